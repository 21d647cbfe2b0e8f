//! How far an import is: a progress bar on a terminal (records, rate, time left from the
//! bytes read), a plain line every few seconds otherwise (a log, a pipe, systemd).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total_bytes: u64,
    started: Instant,
    last_line: Instant,
    every: Duration,
}

impl Progress {
    pub fn new(total_bytes: u64, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total_bytes),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {percent:>3}%  {msg}  {elapsed_precise} elapsed, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            total_bytes,
            started: Instant::now(),
            last_line: Instant::now(),
            every: Duration::from_secs(5),
        }
    }

    /// `bytes` of the file read; `records` handled, `created`, `rejected`.
    pub fn update(&mut self, bytes: u64, records: u64, created: u64, rejected: u64) {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = records as f64 / elapsed;
        let text =
            format!("{records} records, {created} created, {rejected} rejected, {rate:.0}/s");
        match &self.bar {
            Some(bar) => {
                bar.set_position(bytes.min(self.total_bytes));
                bar.set_message(text);
            }
            None if self.last_line.elapsed() >= self.every => {
                self.last_line = Instant::now();
                let share = bytes as f64 / self.total_bytes.max(1) as f64;
                let left = if share > 0.0 {
                    format!("{:.0} s", elapsed * (1.0 - share) / share)
                } else {
                    "unknown".into()
                };
                eprintln!(
                    "import: {:.0}% of the file, {text}, about {left} left",
                    share * 100.0
                );
            }
            None => {}
        }
    }

    pub fn phase(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.println(what),
            None => eprintln!("import: {what}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
