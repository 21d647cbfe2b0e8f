//! `scimgate import`: users and groups from a file, each through the write pipeline an
//! IdP's request takes (`scimgate_http::file_writes`). Users are created as the file is
//! read, a window of them queued at a time so that they share commits; groups after every
//! user, their members (and, for CSV, the user rows' `groups` column) named by the file's
//! ids resolved to the ids the users got. Every refused record is written with its SCIM
//! error to the rejects file; the journal lets an interrupted import go on.

mod columns;
mod journal;
mod progress;
mod records;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use scimgate_http::file_writes::{FileWriter, Queued};
use scimgate_model::{ResourceType, ScimError, ScimType};
use serde_json::{Value, json};

pub use columns::{Columns, export_cell};
pub use journal::Journal;
pub use progress::Progress;
pub use records::Format;
use records::{Record, Resource};

/// Most members sent in one create or PATCH: a big group is filled in steps, each within
/// the request limits an IdP's would meet.
const MEMBERS_PER_WRITE: usize = 1000;

pub struct Options {
    pub format: Format,
    pub columns: Columns,
    pub dry_run: bool,
    /// Creates queued at once (they share commits).
    pub window: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub created: u64,
    pub rejected: u64,
    /// Done by an earlier run of the same import.
    pub done_before: u64,
    /// Found committed by an interrupted run, though its journal had not said so.
    pub found_committed: u64,
    /// CSV: groups created, and existing groups joined.
    pub groups_created: u64,
    pub groups_joined: u64,
    pub elapsed: Duration,
}

/// One refused record, as the rejects file keeps it.
fn rejection(n: u64, rt: Option<ResourceType>, e: &ScimError, data: Option<&Value>) -> Value {
    json!({
        "record": n,
        "resourceType": rt.map(ResourceType::name),
        "status": e.status,
        "scimType": e.scim_type.map(ScimType::as_str),
        "detail": e.detail,
        "data": data,
    })
}

/// A user on its way to storage.
struct InFlight {
    n: u64,
    resource: Resource,
    queued: Option<Queued>,
}

pub struct Import<'a> {
    writer: &'a FileWriter,
    options: &'a Options,
    journal: Journal,
    rejects: Box<dyn Write + 'a>,
    progress: Progress,
    summary: Summary,
    window: VecDeque<InFlight>,
    /// Groups wait until every user is in.
    groups: Vec<(u64, Resource)>,
    /// CSV: each group name with the ids of its users from the file.
    group_members: BTreeMap<String, Vec<String>>,
    /// Dry run: the userNames seen (folded), to find duplicates within the file.
    seen: HashSet<String>,
    /// Dry run: the file ids of the records that would be created.
    would_create: HashSet<String>,
}

impl<'a> Import<'a> {
    pub fn new(
        writer: &'a FileWriter,
        options: &'a Options,
        journal: Journal,
        rejects: Box<dyn Write + 'a>,
        progress: Progress,
    ) -> Self {
        Import {
            writer,
            options,
            journal,
            rejects,
            progress,
            summary: Summary::default(),
            window: VecDeque::new(),
            groups: Vec::new(),
            group_members: BTreeMap::new(),
            seen: HashSet::new(),
            would_create: HashSet::new(),
        }
    }

    /// Reads every record of `input` (whose bytes read so far `position` tells) and
    /// imports it.
    pub fn run(
        mut self,
        input: impl std::io::BufRead,
        position: impl Fn() -> u64,
    ) -> Result<Summary, String> {
        let started = Instant::now();
        let format = self.options.format;
        let columns = self.options.columns.clone();
        records::read(input, format, &columns, |record| {
            self.record(record)?;
            let s = &self.summary;
            let (records, created, rejected) = (s.records, s.created, s.rejected);
            self.progress.update(position(), records, created, rejected);
            Ok(())
        })?;
        while !self.window.is_empty() {
            self.settle_first()?;
        }
        if !self.groups.is_empty() {
            self.progress.phase(&format!(
                "every user is in; {} groups next",
                self.groups.len()
            ));
            self.import_groups()?;
        }
        if !self.group_members.is_empty() {
            self.progress.phase(&format!(
                "every user is in; {} groups from the groups column next",
                self.group_members.len()
            ));
            self.join_groups()?;
        }
        self.journal.sync()?;
        self.rejects
            .flush()
            .map_err(|e| format!("the rejects file: {e}"))?;
        if !self.options.dry_run {
            self.writer.flush().map_err(|e| e.detail)?;
        }
        self.progress.finish();
        self.summary.elapsed = started.elapsed();
        Ok(self.summary)
    }

    fn record(&mut self, record: Record) -> Result<(), String> {
        self.summary.records += 1;
        let n = record.n;
        if self.journal.is_done(n) {
            self.summary.done_before += 1;
            if let Ok(r) = &record.body
                && !r.groups.is_empty()
                && let Some(id) = self.journal.ids.get(&row_id(n))
            {
                let id = id.clone();
                self.note_groups(&r.groups, &id);
            }
            return Ok(());
        }
        let resource = match record.body {
            Ok(resource) => resource,
            Err(detail) => {
                let e = ScimError::bad_request(ScimType::InvalidSyntax, detail);
                return self.reject(n, None, &e, None);
            }
        };
        if resource.rt == ResourceType::Group {
            self.groups.push((n, resource));
            return Ok(());
        }
        let prepared =
            match self
                .writer
                .prepare(resource.rt, resource.doc.clone(), self.options.dry_run)
            {
                Ok(p) => p,
                Err(e) => return self.reject(n, Some(resource.rt), &e, Some(&resource.doc)),
            };
        if self.options.dry_run {
            return self.check_unique(n, &resource);
        }
        self.journal.reaching(n, self.options.window as u64)?;
        let queued = self.writer.queue(prepared);
        self.window.push_back(InFlight {
            n,
            resource,
            queued: Some(queued),
        });
        while self.window.len() >= self.options.window.max(1) {
            self.settle_first()?;
        }
        Ok(())
    }

    /// A dry run's stand-in for storage's uniqueness: a userName twice in the file, or one
    /// the tenant holds.
    fn check_unique(&mut self, n: u64, resource: &Resource) -> Result<(), String> {
        let name = resource.doc["userName"].as_str().unwrap_or_default();
        let folded = scimgate_model::fold_case(name);
        let taken = !self.seen.insert(folded)
            || self
                .writer
                .find_one(ResourceType::User, &user_filter(name))
                .map_err(|e| e.detail)?
                .is_some();
        if taken {
            let e = ScimError::new(
                409,
                Some(ScimType::Uniqueness),
                format!("userName '{name}' is taken"),
            );
            return self.reject(n, Some(ResourceType::User), &e, Some(&resource.doc));
        }
        if let Some(fid) = &resource.file_id {
            self.would_create.insert(fid.clone());
        }
        self.summary.created += 1;
        Ok(())
    }

    fn settle_first(&mut self) -> Result<(), String> {
        let Some(mut flight) = self.window.pop_front() else {
            return Ok(());
        };
        let Some(queued) = flight.queued.take() else {
            return Ok(());
        };
        let n = flight.n;
        match self.writer.settle(queued) {
            Ok(stored) => {
                self.summary.created += 1;
                self.created(n, &flight.resource, &stored.id)
            }
            Err(e) if e.status == 409 && n <= self.journal.reached_before => {
                // Queued by the interrupted run: committed then, its line lost.
                let name = flight.resource.doc["userName"].as_str().unwrap_or_default();
                match self
                    .writer
                    .find_one(ResourceType::User, &user_filter(name))
                    .map_err(|e| e.detail)?
                {
                    Some(id) => {
                        self.summary.found_committed += 1;
                        self.created(n, &flight.resource, &id)
                    }
                    None => {
                        self.reject(n, Some(flight.resource.rt), &e, Some(&flight.resource.doc))
                    }
                }
            }
            Err(e) => self.reject(n, Some(flight.resource.rt), &e, Some(&flight.resource.doc)),
        }
    }

    /// Notes a user created (or found) as `id`: the journal, and its groups.
    fn created(&mut self, n: u64, resource: &Resource, id: &str) -> Result<(), String> {
        let fid = match (&resource.file_id, resource.groups.is_empty()) {
            (Some(fid), _) => Some(fid.clone()),
            (None, false) => Some(row_id(n)),
            (None, true) => None,
        };
        self.journal.done(n, fid.as_deref(), Some(id))?;
        if !resource.groups.is_empty() {
            self.note_groups(&resource.groups, id);
        }
        Ok(())
    }

    fn note_groups(&mut self, names: &[String], id: &str) {
        for name in names {
            self.group_members
                .entry(name.clone())
                .or_default()
                .push(id.to_owned());
        }
    }

    fn reject(
        &mut self,
        n: u64,
        rt: Option<ResourceType>,
        e: &ScimError,
        data: Option<&Value>,
    ) -> Result<(), String> {
        self.summary.rejected += 1;
        writeln!(self.rejects, "{}", rejection(n, rt, e, data))
            .map_err(|e| format!("the rejects file: {e}"))?;
        self.journal.done(n, None, None)
    }

    /// A group of the `groups` column refused (or, with its id, not wholly filled): its
    /// line in the rejects file names it, as it has no record of its own.
    fn reject_group(
        &mut self,
        name: &str,
        id: Option<&str>,
        e: &ScimError,
        detail: String,
    ) -> Result<(), String> {
        self.summary.rejected += 1;
        let mut line = json!({"group": name, "status": e.status,
                              "scimType": e.scim_type.map(ScimType::as_str), "detail": detail});
        if let Some(id) = id {
            line["id"] = json!(id);
        }
        writeln!(self.rejects, "{line}").map_err(|e| format!("the rejects file: {e}"))
    }

    /// The file's groups, each after the groups it names as members (a circle is
    /// refused), their members' file ids replaced by the ids the users got.
    fn import_groups(&mut self) -> Result<(), String> {
        let mut waiting: Vec<(u64, Resource)> = std::mem::take(&mut self.groups);
        let pending_ids = |waiting: &[(u64, Resource)]| -> HashSet<String> {
            waiting
                .iter()
                .filter_map(|(_, r)| r.file_id.clone())
                .collect()
        };
        loop {
            let open = pending_ids(&waiting);
            let (ready, blocked): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, r)| {
                !member_values(&r.doc)
                    .iter()
                    .any(|v| open.contains(v) && r.file_id.as_deref() != Some(v.as_str()))
            });
            if ready.is_empty() {
                for (n, r) in blocked {
                    let e = ScimError::invalid_value(
                        "the group's members form a circle with other groups of the file",
                    );
                    self.reject(n, Some(ResourceType::Group), &e, Some(&r.doc))?;
                }
                return Ok(());
            }
            for (n, r) in ready {
                self.import_group(n, r)?;
            }
            if blocked.is_empty() {
                return Ok(());
            }
            waiting = blocked;
        }
    }

    fn import_group(&mut self, n: u64, mut r: Resource) -> Result<(), String> {
        let mut members: Vec<Value> = r
            .doc
            .get_mut("members")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        for m in &mut members {
            if let Some(value) = m.get("value").and_then(Value::as_str)
                && let Some(id) = self.journal.ids.get(value)
            {
                m["value"] = Value::String(id.clone());
            }
        }
        if self.options.dry_run {
            return self.check_group(n, &r, &members);
        }
        // Created by an interrupted run: its members are added again, every step (adding a
        // member it has is no change), so that a group cut off half-way is filled.
        let resumed = match self.journal.created.get(&n) {
            Some(id) => Some(id.clone()),
            None if n <= self.journal.reached_before => {
                let name = r.doc["displayName"].as_str().unwrap_or_default();
                self.writer
                    .find_one(ResourceType::Group, &group_filter(name))
                    .map_err(|e| e.detail)?
            }
            None => None,
        };
        let (id, rest) = match resumed {
            Some(id) => {
                self.summary.found_committed += 1;
                (id, members.as_slice())
            }
            None => {
                let split = members.len().min(MEMBERS_PER_WRITE);
                r.doc["members"] = Value::Array(members[..split].to_vec());
                self.journal.reaching(n, 1)?;
                let result = self
                    .writer
                    .prepare(ResourceType::Group, r.doc.clone(), false)
                    .and_then(|p| self.writer.settle(self.writer.queue(p)));
                match result {
                    Ok(stored) => {
                        self.journal.group_created(n, &stored.id)?;
                        (stored.id, &members[split..])
                    }
                    Err(e) => return self.reject(n, Some(ResourceType::Group), &e, Some(&r.doc)),
                }
            }
        };
        r.doc["members"] = Value::Array(members.clone());
        for chunk in rest.chunks(MEMBERS_PER_WRITE) {
            if let Err(e) = self.writer.add_members(&id, chunk.to_vec()) {
                self.summary.created += 1;
                self.journal.done(n, r.file_id.as_deref(), Some(&id))?;
                let e = ScimError::new(
                    e.status,
                    e.scim_type,
                    format!(
                        "group created as {id}, but not every member was added: {}",
                        e.detail
                    ),
                );
                return self.reject(n, Some(ResourceType::Group), &e, Some(&r.doc));
            }
        }
        self.summary.created += 1;
        self.journal.done(n, r.file_id.as_deref(), Some(&id))
    }

    /// A dry run's stand-in for storage's member checks: each member is a record of the
    /// file that would be created, or a resource the tenant holds; never the group itself.
    fn check_group(&mut self, n: u64, r: &Resource, members: &[Value]) -> Result<(), String> {
        let mut doc = r.doc.clone();
        doc["members"] = Value::Array(members.iter().take(MEMBERS_PER_WRITE).cloned().collect());
        if let Err(e) = self.writer.prepare(ResourceType::Group, doc, true) {
            return self.reject(n, Some(ResourceType::Group), &e, Some(&r.doc));
        }
        for value in members.iter().filter_map(|m| m["value"].as_str()) {
            let missing = if r.file_id.as_deref() == Some(value) {
                Some(format!("group '{value}' cannot be a member of itself"))
            } else if self.would_create.contains(value)
                || self.writer.exists(value).map_err(|e| e.detail)?
            {
                None
            } else {
                Some(format!("member '{value}' does not exist in this tenant"))
            };
            if let Some(detail) = missing {
                let e = ScimError::invalid_value(detail);
                return self.reject(n, Some(ResourceType::Group), &e, Some(&r.doc));
            }
        }
        if let Some(fid) = &r.file_id {
            self.would_create.insert(fid.clone());
        }
        self.summary.created += 1;
        Ok(())
    }

    /// CSV: each group named in the `groups` column, created when the tenant has none of
    /// that name, else joined; its users added a step at a time.
    fn join_groups(&mut self) -> Result<(), String> {
        let all = std::mem::take(&mut self.group_members);
        for (name, ids) in all {
            if self.journal.groups.contains_key(&name) {
                continue;
            }
            let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
            if self.options.dry_run {
                self.summary.groups_created += 1;
                continue;
            }
            let existing = self
                .writer
                .find_one(ResourceType::Group, &group_filter(&name))
                .map_err(|e| e.detail)?;
            let mut chunks = members.chunks(MEMBERS_PER_WRITE);
            let id = match existing {
                Some(id) => {
                    self.summary.groups_joined += 1;
                    id
                }
                None => {
                    let doc = json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": name,
                        "members": chunks.next().unwrap_or_default(),
                    });
                    match self
                        .writer
                        .prepare(ResourceType::Group, doc.clone(), false)
                        .and_then(|p| self.writer.settle(self.writer.queue(p)))
                    {
                        Ok(stored) => {
                            self.summary.groups_created += 1;
                            stored.id
                        }
                        Err(e) => {
                            self.reject_group(&name, None, &e, e.detail.clone())?;
                            continue;
                        }
                    }
                }
            };
            for chunk in chunks {
                if let Err(e) = self.writer.add_members(&id, chunk.to_vec()) {
                    let detail = format!("not every member was added: {}", e.detail);
                    self.reject_group(&name, Some(&id), &e, detail)?;
                    break;
                }
            }
            self.journal.group_done(&name, &id)?;
        }
        Ok(())
    }
}

/// How the journal names a CSV row's user.
fn row_id(n: u64) -> String {
    format!("#row{n}")
}

fn member_values(doc: &Value) -> Vec<String> {
    doc["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A filter for `value` of `attribute` (quotes and backslashes escaped).
fn eq_filter(attribute: &str, value: &str) -> String {
    format!(
        "{attribute} eq {}",
        serde_json::to_string(value).unwrap_or_default()
    )
}

fn user_filter(name: &str) -> String {
    eq_filter("userName", name)
}

fn group_filter(name: &str) -> String {
    eq_filter("displayName", name)
}

/// What identifies one import for its journal: the file (its size and its first bytes'
/// digest), its format and tenant.
pub fn identity(file: &std::path::Path, format: Format, tenant: &str) -> Result<Value, String> {
    use std::io::Read;
    let meta = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut head = vec![0; 1 << 16];
    let mut f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let read = f.read(&mut head).map_err(|e| e.to_string())?;
    head.truncate(read);
    let digest = ring::digest::digest(&ring::digest::SHA256, &head);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Ok(json!({
        "size": meta.len(),
        "head": hex,
        "format": format!("{format:?}"),
        "tenant": tenant,
    }))
}

/// The default places of the journal and the rejects, beside the file.
pub fn beside(file: &std::path::Path, ending: &str) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(ending);
    file.with_file_name(name)
}

/// A rejects file appended to (a resumed import keeps the earlier run's lines).
pub fn rejects_file(path: &std::path::Path, resume: bool) -> Result<Box<dyn Write>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    refuse_link(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(resume)
        .truncate(!resume)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

/// Refuses a symbolic link where the import writes (its journal, its rejects): what it
/// writes would land wherever the link points.
pub fn refuse_link(path: &std::path::Path) -> Result<(), String> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "{} is a symbolic link; the import writes there, give another path",
            path.display()
        ));
    }
    Ok(())
}
