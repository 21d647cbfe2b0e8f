//! Where an import stands, kept beside the file so that an interrupted import goes on
//! where it stopped: one JSON line per record done (with the id it got, when other records
//! may name it), and, written and synced before each window of creates is handed to
//! storage, how far the queue will reach. A record past the last one done but within that
//! reach may have been committed without its line: the import looks for it before it
//! creates it again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde_json::{Value, json};

pub struct Journal {
    out: Option<BufWriter<File>>,
    done: Vec<u64>,
    /// How far the previous run's queue reached: records after the done ones up to here
    /// are uncertain.
    pub reached_before: u64,
    reach: u64,
    /// How records of the file name each other → the id each got.
    pub ids: HashMap<String, String>,
    /// CSV groups finished: name → id.
    pub groups: HashMap<String, String>,
    /// Groups of the file created (their members perhaps not all added yet): record → id.
    pub created: HashMap<u64, String>,
}

impl Journal {
    /// A journal that keeps nothing (a dry run).
    pub fn none() -> Journal {
        Journal {
            out: None,
            done: Vec::new(),
            reached_before: 0,
            reach: 0,
            ids: HashMap::new(),
            groups: HashMap::new(),
            created: HashMap::new(),
        }
    }

    /// Opens (or starts) the journal at `path` for the import that `identity` describes
    /// (file size, format, tenant): one of another import is refused.
    pub fn open(path: &Path, identity: &Value) -> Result<Journal, String> {
        super::refuse_link(path)?;
        let mut journal = Journal::none();
        if path.exists() {
            let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut lines = BufReader::new(file).lines();
            let first: Value = lines
                .next()
                .and_then(Result::ok)
                .and_then(|l| serde_json::from_str(&l).ok())
                .unwrap_or(Value::Null);
            if first.get("import") != Some(identity) {
                return Err(format!(
                    "{} belongs to another import ({}); remove it to start over, or give another --state",
                    path.display(),
                    first.get("import").unwrap_or(&Value::Null)
                ));
            }
            for line in lines {
                // A line cut by a crash ends that run's lines (the next run starts on a
                // line of its own): skipped.
                let Some(entry) = line
                    .ok()
                    .and_then(|l| serde_json::from_str::<Value>(&l).ok())
                else {
                    continue;
                };
                journal.load(&entry);
            }
        }
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if journal.done.is_empty()
            && journal.reached_before == 0
            && journal.groups.is_empty()
            && journal.created.is_empty()
        {
            out.set_len(0).map_err(|e| e.to_string())?;
            writeln!(out, "{}", json!({"import": identity})).map_err(|e| e.to_string())?;
        } else {
            // A cut line is ended, so that the next entry starts on its own line.
            writeln!(out).map_err(|e| e.to_string())?;
        }
        journal.out = Some(BufWriter::new(out));
        Ok(journal)
    }

    fn load(&mut self, entry: &Value) {
        if let Some(n) = entry["n"].as_u64() {
            self.mark_done(n);
            if let (Some(fid), Some(id)) = (entry["fid"].as_str(), entry["id"].as_str()) {
                self.ids.insert(fid.to_owned(), id.to_owned());
            }
        }
        if let Some(reach) = entry["reach"].as_u64() {
            self.reached_before = self.reached_before.max(reach);
        }
        if let (Some(n), Some(id)) = (entry["created"].as_u64(), entry["id"].as_str()) {
            self.created.insert(n, id.to_owned());
        }
        if let (Some(name), Some(id)) = (entry["group"].as_str(), entry["id"].as_str()) {
            self.groups.insert(name.to_owned(), id.to_owned());
        }
    }

    fn mark_done(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.done.len() <= word {
            self.done.resize(word + 1, 0);
        }
        self.done[word] |= 1 << bit;
    }

    pub fn is_done(&self, n: u64) -> bool {
        self.done
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    /// Record `n` is done: created as `id` (named `fid` in the file), or refused.
    pub fn done(&mut self, n: u64, fid: Option<&str>, id: Option<&str>) -> Result<(), String> {
        self.mark_done(n);
        if let (Some(fid), Some(id)) = (fid, id) {
            self.ids.insert(fid.to_owned(), id.to_owned());
        }
        self.write(&match (fid, id) {
            (Some(fid), Some(id)) => json!({"n": n, "fid": fid, "id": id}),
            _ => json!({"n": n}),
        })
    }

    /// Group record `n` was created as `id`; its members follow (synced: a resumed import
    /// must find it, not create it again).
    pub fn group_created(&mut self, n: u64, id: &str) -> Result<(), String> {
        self.created.insert(n, id.to_owned());
        self.write(&json!({"created": n, "id": id}))?;
        self.sync()
    }

    pub fn group_done(&mut self, name: &str, id: &str) -> Result<(), String> {
        self.groups.insert(name.to_owned(), id.to_owned());
        self.write(&json!({"group": name, "id": id}))?;
        self.sync()
    }

    /// Before record `n` is queued: the queue may reach `n + window`; written and synced
    /// once per window.
    pub fn reaching(&mut self, n: u64, window: u64) -> Result<(), String> {
        if n <= self.reach {
            return Ok(());
        }
        self.reach = n + window;
        self.write(&json!({"reach": self.reach}))?;
        self.sync()
    }

    fn write(&mut self, entry: &Value) -> Result<(), String> {
        match &mut self.out {
            Some(out) => writeln!(out, "{entry}").map_err(|e| format!("the import journal: {e}")),
            None => Ok(()),
        }
    }

    pub fn sync(&mut self) -> Result<(), String> {
        match &mut self.out {
            Some(out) => out
                .flush()
                .and_then(|()| out.get_ref().sync_data())
                .map_err(|e| format!("the import journal: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_journal_knows_what_was_done_and_how_far_the_queue_reached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("j");
        let identity = json!({"size": 10, "tenant": "t"});
        let mut j = Journal::open(&path, &identity).expect("open");
        j.reaching(1, 4).expect("reach");
        j.done(1, Some("u1"), Some("id-1")).expect("done");
        j.done(3, None, None).expect("done");
        j.group_done("Admins", "g-1").expect("group");
        drop(j);
        // A crash cut the last line in half.
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        write!(file, "{{\"n\": 4, \"fi").expect("cut");
        drop(file);
        let mut again = Journal::open(&path, &identity).expect("reopen");
        assert!(again.is_done(1) && again.is_done(3));
        assert!(!again.is_done(2) && !again.is_done(4));
        assert_eq!(again.reached_before, 5);
        assert_eq!(again.ids.get("u1").map(String::as_str), Some("id-1"));
        assert_eq!(again.groups.get("Admins").map(String::as_str), Some("g-1"));
        again.done(2, None, None).expect("done after the cut");
        drop(again);
        let third = Journal::open(&path, &identity).expect("third");
        assert!(third.is_done(2));
        let other = Journal::open(&path, &json!({"size": 11, "tenant": "t"}));
        assert!(other.err().expect("refused").contains("another import"));
    }
}
