//! Background work that runs every so often (refreshing the tenant registry, pruning the
//! audit trail, advancing the plugins' clock, watching connections) stops one way: when
//! its owner drops the [`Periodic`] handle. The thread is woken at once, not at its next
//! tick, and joined, so nothing outlives what it works on.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A thread that runs a task every interval until this handle is dropped.
pub struct Periodic {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// How long a drop waits for the thread to end (`None`: until it does).
    join_within: Option<Duration>,
}

impl std::fmt::Debug for Periodic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Periodic")
    }
}

impl Periodic {
    /// Runs `tick` every `every` (the first time after one interval) on a thread named
    /// `name`, until the handle is dropped.
    pub fn start(
        name: &str,
        every: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> io::Result<Periodic> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                loop {
                    let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
                    let (guard, _) = wake
                        .wait_timeout_while(guard, every, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *guard {
                        return;
                    }
                    drop(guard);
                    tick();
                }
            })?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
            join_within: None,
        })
    }
}

/// What a long-running task started with [`Periodic::spawn`] checks to know it must end.
#[derive(Clone)]
pub struct StopSignal(Arc<(Mutex<bool>, Condvar)>);

impl StopSignal {
    pub fn stopped(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sleeps for `time`, or less if the handle is dropped meanwhile; true when it was.
    pub fn sleep(&self, time: Duration) -> bool {
        let (stopped, wake) = &*self.0;
        let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = wake
            .wait_timeout_while(guard, time, |stop| !*stop)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

impl Periodic {
    /// Runs `task` once on a thread named `name`, for work that loops on its own (waiting
    /// on something other than a clock): it gets a [`StopSignal`] to check and to sleep
    /// on, and ends, joined, when the handle is dropped, like a ticking task.
    pub fn spawn(
        name: &str,
        task: impl FnOnce(StopSignal) + Send + 'static,
    ) -> io::Result<Periodic> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = StopSignal(Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || task(signal))?;
        Ok(Periodic {
            stop,
            thread: Some(thread),
            join_within: None,
        })
    }

    /// A drop waits at most `grace` for the task to end, then leaves it to end on its own:
    /// for a task that may be stuck in a call it cannot interrupt (an HTTP request to a
    /// receiver that hangs), which must not hold the process's stop for its whole timeout.
    pub fn join_within(mut self, grace: Duration) -> Periodic {
        self.join_within = Some(grace);
        self
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // The task itself may drop its owner's last handle (a tick that held it):
            // a thread cannot wait for itself, and it returns at its next check anyway.
            if thread.thread().id() == thread::current().id() {
                return;
            }
            if let Some(grace) = self.join_within {
                let deadline = std::time::Instant::now() + grace;
                while !thread.is_finished() && std::time::Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(10));
                }
                if !thread.is_finished() {
                    return;
                }
            }
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn a_spawned_task_sees_the_stop_at_once() {
        let ended = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&ended);
        let handle = Periodic::spawn("test-loop", move |stop| {
            while !stop.sleep(Duration::from_secs(60)) {}
            assert!(stop.stopped());
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .expect("spawn");
        let started = Instant::now();
        drop(handle);
        assert_eq!(ended.load(Ordering::SeqCst), 1, "joined");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_stuck_task_holds_a_bounded_drop_only_for_its_grace() {
        let handle = Periodic::spawn("test-stuck", |_stop| {
            std::thread::sleep(Duration::from_secs(30));
        })
        .expect("spawn")
        .join_within(Duration::from_millis(100));
        let started = Instant::now();
        drop(handle);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn ticks_until_dropped_and_stops_at_once() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ticks);
        let periodic = Periodic::start("test-tick", Duration::from_millis(5), move || {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .expect("start");
        std::thread::sleep(Duration::from_millis(60));
        let long = Periodic::start("test-long", Duration::from_secs(3600), || {}).expect("start");
        let started = Instant::now();
        drop(long);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "woken, not left to sleep its hour"
        );
        drop(periodic);
        let after = ticks.load(Ordering::Relaxed);
        assert!(after >= 3, "it ticked: {after}");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            ticks.load(Ordering::Relaxed),
            after,
            "no tick after the drop"
        );
    }
}
