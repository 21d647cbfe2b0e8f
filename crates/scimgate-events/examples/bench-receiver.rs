//! A receiver of the change feed for `bench/events.sh`: accepts RFC 8935 pushes on any path
//! (a thread per connection, keep-alive), answering 503 until `--refuse-until` (Unix ms),
//! and keeps, per event, when it arrived and how long after its write (the create's
//! `meta.lastModified`). `GET /stats` answers the counts and latency percentiles.
//!
//!   bench-receiver PORT [--refuse-until UNIX_MS]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine;

#[derive(Default)]
struct Seen {
    /// (arrival, Unix ms; latency from the write, ms)
    events: Vec<(i64, f64)>,
    refused: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).expect("PORT");
    let refuse_until = Arc::new(AtomicI64::new(
        args.iter()
            .position(|a| a == "--refuse-until")
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    ));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    for stream in listener.incoming().flatten() {
        let (seen, refuse_until) = (Arc::clone(&seen), Arc::clone(&refuse_until));
        thread::spawn(move || serve(stream, &seen, &refuse_until));
    }
}

fn now_ms() -> f64 {
    let t = scimgate_model::Clock::now(&scimgate_model::SystemClock);
    (t.unix_timestamp_nanos() / 1000) as f64 / 1000.0
}

fn serve(stream: TcpStream, seen: &Mutex<Seen>, refuse_until: &AtomicI64) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let reply = if line.starts_with("GET /stats") {
            let stats = stats(&seen.lock().expect("lock"));
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{stats}",
                stats.len()
            )
        } else if (now_ms() as i64) < refuse_until.load(Ordering::Relaxed) {
            seen.lock().expect("lock").refused += 1;
            "HTTP/1.1 503 Busy\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n".to_owned()
        } else {
            let arrived = now_ms();
            let latency = written_ms(&body).map_or(f64::NAN, |w| arrived - w);
            seen.lock()
                .expect("lock")
                .events
                .push((arrived as i64, latency));
            "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_owned()
        };
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// When the event's write was made: its create's `meta.lastModified`, in Unix ms.
fn written_ms(body: &[u8]) -> Option<f64> {
    let token = std::str::from_utf8(body).ok()?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').nth(1)?)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    let events = claims["events"].as_object()?;
    let modified = events.values().next()?["data"]["meta"]["lastModified"].as_str()?;
    let t = time::OffsetDateTime::parse(modified, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some((t.unix_timestamp_nanos() / 1000) as f64 / 1000.0)
}

fn stats(seen: &Seen) -> String {
    let mut latencies: Vec<f64> = seen
        .events
        .iter()
        .map(|e| e.1)
        .filter(|l| l.is_finite())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let arrivals: Vec<i64> = seen.events.iter().map(|e| e.0).collect();
    serde_json::json!({
        "events": seen.events.len(),
        "refused": seen.refused,
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "first_ms": arrivals.iter().min(),
        "last_ms": arrivals.iter().max(),
        "arrivals_ms": arrivals,
    })
    .to_string()
}
