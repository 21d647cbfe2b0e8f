//! A real HTTP receiver of the change feed on loopback: it records every POST (headers and
//! body) and answers with the status the test sets, or is not listening at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// The status to answer with (202 unless set).
    status: Arc<AtomicU16>,
    /// The status to answer a tenant's events with, where it differs.
    by_tenant: Arc<Mutex<HashMap<String, u16>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        Self::on(listener, port)
    }

    /// Listens on `port` (one that was free and nobody listened on: a receiver that was
    /// down and comes back).
    pub fn start_on(port: u16) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        Self::on(listener, port)
    }

    fn on(listener: TcpListener, port: u16) -> Receiver {
        listener.set_nonblocking(true).expect("nonblocking");
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(202));
        let stop = Arc::new(AtomicBool::new(false));
        let by_tenant = Arc::new(Mutex::new(HashMap::new()));
        let (g, sp) = (Arc::clone(&got), Arc::clone(&stop));
        let answers = Answers {
            status: Arc::clone(&status),
            by_tenant: Arc::clone(&by_tenant),
        };
        let thread = thread::spawn(move || {
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    // Each connection on its own thread, as a real receiver serves
                    // several senders (instances) at once.
                    Ok((stream, _)) => {
                        let (got, answers) = (Arc::clone(&g), answers.clone());
                        thread::spawn(move || serve(stream, &got, &answers));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/events"),
            got,
            status,
            by_tenant,
            stop,
            thread: Some(thread),
        }
    }

    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Answers the events of `tenant` (the SET's `tenant` claim) with `status`.
    pub fn answer_tenant_with(&self, tenant: &str, status: u16) {
        self.by_tenant
            .lock()
            .expect("lock")
            .insert(tenant.to_owned(), status);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `n` requests were accepted (2xx), or panics after `within`.
    pub fn wait_for_accepted(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let accepted: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| (200..300).contains(&r.status))
                .collect();
            if accepted.len() >= n {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events accepted: {accepted:#?}",
                accepted.len()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the receiver answers: one status, or another for some tenants' events.
#[derive(Clone)]
struct Answers {
    status: Arc<AtomicU16>,
    by_tenant: Arc<Mutex<HashMap<String, u16>>>,
}

impl Answers {
    fn to(&self, body: &str) -> u16 {
        let tenant = body
            .contains('.')
            .then(|| {
                claims_unverified(body)["tenant"]
                    .as_str()
                    .map(str::to_owned)
            })
            .flatten();
        tenant
            .and_then(|t| self.by_tenant.lock().expect("lock").get(&t).copied())
            .unwrap_or_else(|| self.status.load(Ordering::SeqCst))
    }
}

/// The claims of a SET without checking its signature (the tests check it where it
/// matters); `Null` for a body that is not a JWS.
pub fn claims_unverified(token: &str) -> Value {
    let Some(payload) = token.split('.').nth(1) else {
        return Value::Null;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// Reads one request (keep-alive connections too) and answers it.
fn serve(stream: TcpStream, got: &Mutex<Vec<Received>>, answers: &Answers) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let code = answers.to(&body);
        got.lock().expect("lock").push(Received {
            headers,
            body,
            status: code,
        });
        let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
