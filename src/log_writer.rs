//! The log's writer: each line is queued by the thread that logs it and written to standard
//! error by a thread of its own, as many lines per write as are waiting. A request's log
//! line then costs its async worker a queue push, not a system call.
//!
//! Not tracing-appender's non-blocking writer: its guard gives up after a second at
//! shutdown, so a slow reader of standard error (a pipe to a log shipper) lost the last
//! lines of a graceful stop. Here the queue is bounded and never drops a line (a full queue
//! makes the logging thread wait, as a slow standard error did before), and the guard
//! waits until every line queued before it was dropped is written.

use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Lines waiting at most; past it, a logging thread waits for the writer.
const QUEUED_LINES: usize = 64 * 1024;

/// How long the writer rests after each batch before it looks again. A parked writer is
/// woken, a system call and an interrupt to another core, for nearly every line logged
/// (each request's `served` line): resting took a GET from 126–142 to 107–111 µs of CPU.
/// While it rests no one waits for it, so a line costs its thread a queue push; a busy
/// server's lines reach standard error at most this much later, in batches.
const REST: std::time::Duration = std::time::Duration::from_millis(2);

enum Queued {
    Line(Vec<u8>),
    /// Everything queued before this is written; then the thread ends.
    Stop,
}

/// Where `tracing` writes: a handle on the queue (one per event, cheap to clone).
#[derive(Clone)]
pub struct LogQueue {
    lines: SyncSender<Queued>,
}

/// Writes out what is queued, and stops the writer, when dropped.
pub struct Flushed {
    lines: SyncSender<Queued>,
    writer: Option<JoinHandle<()>>,
}

/// Starts the writer thread on `out`.
pub fn start(out: impl Write + Send + 'static) -> io::Result<(LogQueue, Flushed)> {
    let (lines, queued) = sync_channel(QUEUED_LINES);
    let writer = std::thread::Builder::new()
        .name("scimgate-log".into())
        .spawn(move || write_out(queued, BufWriter::new(out)))?;
    Ok((
        LogQueue {
            lines: lines.clone(),
        },
        Flushed {
            lines,
            writer: Some(writer),
        },
    ))
}

/// Writes each batch of waiting lines, then flushes; a failed write loses only its lines
/// (standard error gone is no reason to stop serving).
fn write_out(queued: Receiver<Queued>, mut out: impl Write) {
    while let Ok(first) = queued.recv() {
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Queued::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Queued::Stop => {
                    let _ = out.flush();
                    return;
                }
            }
            next = queued.try_recv().ok();
        }
        let _ = out.flush();
        std::thread::sleep(REST);
    }
}

impl Write for LogQueue {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lines
            .send(Queued::Line(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the log writer has stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogQueue {
    type Writer = LogQueue;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for Flushed {
    fn drop(&mut self) {
        if self.lines.send(Queued::Stop).is_ok()
            && let Some(writer) = self.writer.take()
        {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A standard error that takes its time (2 MB written 8 KiB at a time, 5 ms each:
    /// longer than tracing-appender's guard waited), shared with the test to read back.
    #[derive(Clone, Default)]
    struct Slow(Arc<Mutex<Vec<u8>>>);

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(5));
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_queued_before_the_stop_is_written_in_order() {
        let out = Slow::default();
        let (queue, flushed) = start(out.clone()).expect("start");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut queue = queue.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        queue
                            .write_all(format!("{t} {i} {}\n", "x".repeat(90)).as_bytes())
                            .expect("queued");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        drop(flushed);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("{t} ")))
                .collect();
            let expected: Vec<String> = (0..5_000)
                .map(|i| format!("{t} {i} {}", "x".repeat(90)))
                .collect();
            assert_eq!(mine, expected, "thread {t}'s lines, in order");
        }
    }
}
