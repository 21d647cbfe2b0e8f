//! A PostgreSQL server of one test's own, made with Debian's `initdb` and `pg_ctl` in a
//! temporary folder, so that the test may stop it, start it again or freeze it without
//! touching the server the other tests share. PostgreSQL refuses to run as root: as root
//! (CI), its commands run as the `postgres` user the package made.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// A new cluster on a free loopback port, started; trust authentication (loopback).
    pub fn start() -> Cluster {
        let bin = server_binaries();
        let dir = tempfile::tempdir().expect("tempdir");
        if is_root() {
            let (uid, gid) = (id(&["-u", "postgres"]), id(&["-g", "postgres"]));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let cluster = Cluster { dir, bin, port };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// The libpq address of its `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Stops it as an operator would for maintenance (`pg_ctl stop -m fast`: sessions are
    /// ended, open transactions rolled back).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
    }

    /// Starts it (again), on the same port, and waits until it takes connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.pg_ctl(&["start", "-o", &options, "-l", &log.to_string_lossy()]);
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open and nothing
    /// answers, as with a server whose disk stalls.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let Ok(pid) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return;
        };
        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
        // The postmaster, then its children (the sessions, the background processes).
        let mut pids = vec![pid.clone()];
        pids.extend(children_of(&pid));
        let _ = Command::new("kill").arg(which).args(&pids).status();
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let mut all = vec!["-D", data.to_str().expect("path"), "-w", "-s"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn run(&self, tool: &str, args: &[&str]) {
        assert!(self.try_run(tool, args), "{tool} {args:?}");
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> bool {
        let program = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .status()
            .expect("run a PostgreSQL tool")
            .success()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.thaw();
        let data = self.data();
        self.try_run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "stop",
                "-m",
                "immediate",
                "-s",
            ],
        );
    }
}

/// Where Debian keeps the server's programs (`/usr/lib/postgresql/15/bin`).
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("PostgreSQL's server package (scripts/with-postgres installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("initdb")
}

/// The processes whose parent is `pid` (from `/proc`: `procps` may not be installed).
fn children_of(pid: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (name) state ppid …`: the name may hold spaces, so read after its ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (ppid == pid).then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

fn is_root() -> bool {
    id(&["-u"]) == 0
}

/// What `id` says: `-u` this user's id, `-u postgres` that user's.
fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number")
}
