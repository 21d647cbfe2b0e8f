//! Delivery to one configured receiver (RFC 8935 push, or a Standard Webhooks POST): a
//! thread of its own per receiver, so that one slow or dead receiver never delays another
//! nor any request. Each tenant's events go in order, at least once: an event is passed
//! only when the receiver accepted it (2xx) or refused that very event (400, RFC 8935
//! §2.3); anything else is tried again, backing off, honouring `Retry-After`, until the
//! receiver has failed for longer than it allows and is set aside (dead-lettered), its
//! position kept for when it is enabled again. A failure of one event (a 500 or 413 to it,
//! a failed `event` hook) holds only its tenant; one every event would meet (the receiver
//! unreachable, 429, 503, its credentials refused) holds the receiver. Positions are saved
//! as the writer's next batch allows; after a crash a receiver may get an event again,
//! never miss one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scimgate_limits::{Periodic, StopSignal};
use scimgate_store::{EventPosition, EventRecord};

use crate::config::ReceiverConfig;
use crate::error::EventsError;
use crate::feed::Feed;
use crate::send::{Outcome, Sender};

/// How long the server's stop waits for a delivery under way.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Events read from the store at a time (each may be a large group).
const BATCH: usize = 20;
/// How often the stored state is looked at: a dead receiver enabled again, a replay asked.
const RECHECK: Duration = Duration::from_secs(2);
/// How often the tenants of a receiver of every tenant (`"*"`) are listed again.
const TENANTS_RECHECK: Duration = Duration::from_secs(5);

/// Counters of one receiver, read by `/metrics`.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    pub name: String,
    pub delivered: AtomicU64,
    /// Events the `event` hook dropped for this receiver.
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
    pub rejected: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Events not yet delivered, over its tenants, as of its last pass.
    pub lag_events: AtomicU64,
    /// When the oldest event not yet delivered was written (Unix seconds; 0: none).
    pub oldest_pending: AtomicI64,
    /// Whether it is dead-lettered in some tenant.
    pub dead: AtomicBool,
}

/// A running receiver: delivery stops when this is dropped.
pub struct Receiver {
    pub name: String,
    pub stats: Arc<ReceiverStats>,
    _thread: Periodic,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Receiver({})", self.name)
    }
}

/// The stored position name of a receiver.
pub fn consumer_name(receiver: &str) -> String {
    format!("receiver:{receiver}")
}

impl Receiver {
    /// Reads the receiver's secrets and starts delivering to it.
    pub fn start(feed: Feed, config: ReceiverConfig) -> Result<Receiver, EventsError> {
        let sender = Sender::new(&config)?;
        let stats = Arc::new(ReceiverStats {
            name: config.name.clone(),
            ..ReceiverStats::default()
        });
        let name = config.name.clone();
        let worker = Worker {
            consumer: consumer_name(&config.name),
            feed,
            config,
            sender,
            stats: Arc::clone(&stats),
            lease_until: std::cell::Cell::new(None),
        };
        // A delivery under way may wait for its receiver up to the timeout: the server's
        // stop waits a little for it, not that long (the event is sent again after the
        // restart, at least once).
        let thread = Periodic::spawn(&format!("events-{name}"), move |stop| worker.run(&stop))
            .map_err(|e| EventsError::Config(format!("could not start a delivery thread: {e}")))?
            .join_within(STOP_GRACE);
        Ok(Receiver {
            name,
            stats,
            _thread: thread,
        })
    }
}

struct Worker {
    consumer: String,
    feed: Feed,
    config: ReceiverConfig,
    sender: Sender,
    stats: Arc<ReceiverStats>,
    /// Until when this instance may deliver: its lease on the receiver, as last renewed,
    /// trusted a little less long than the database keeps it (`LEASE_TRUSTED`).
    lease_until: std::cell::Cell<Option<Instant>>,
}

/// Where the receiver stands in one tenant.
struct Standing {
    seq: i64,
    dead: bool,
    failing_since: Option<String>,
    last_error: Option<String>,
    /// Whether `seq` moved since it was last saved, and when it was.
    unsaved: bool,
    saved_at: Instant,
    /// Failed tries in a row of the tenant's next event, and when the next try may be:
    /// an event only this tenant's delivery meets holds this tenant alone.
    backoff: Backoff,
}

/// Tries failed in a row, and when the next may be made.
#[derive(Default)]
struct Backoff {
    attempt: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn open(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| until <= now)
    }

    /// Whether a wait was set and is over: a try is due.
    fn due(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| until <= now)
    }

    fn failed(&mut self, asked: Option<Duration>, longest: Duration) {
        // A `Retry-After` is honoured, but never below a second: `0` must not make a hot
        // loop.
        let wait = asked
            .map_or_else(
                || backoff(self.attempt),
                |after| after.max(Duration::from_secs(1)),
            )
            .min(longest.max(Duration::from_secs(1)));
        self.attempt = self.attempt.saturating_add(1);
        self.until = Some(Instant::now() + wait);
    }
}

/// Longest the loop waits for a commit before it looks again (stop, replays, retries).
const IDLE: Duration = Duration::from_millis(500);
/// How often a moving position is saved, and the lag measured, while events flow: each
/// save is work for the single writer, and a receiver keeping up with a busy feed would
/// otherwise save after nearly every commit. A crash may send again what was delivered
/// since the last save (at least once), never skip it.
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Several instances on one database deliver each receiver's events from one of them at
/// a time: the one holding the receiver's lease, kept `LEASE_TTL` by the database and
/// renewed every `LEASE_RENEW`. The holder stops delivering once `LEASE_TRUSTED` has
/// passed without a renewal, before another instance can take the lease over, so two
/// never deliver at once; the next holder starts from the stored position (what was
/// delivered since its last save is sent again: at least once, in order).
const LEASE_TTL: Duration = Duration::from_secs(5);
const LEASE_RENEW: Duration = Duration::from_secs(1);
const LEASE_TRUSTED: Duration = Duration::from_secs(3);

impl Worker {
    /// Whether this instance may deliver now.
    fn lease_held(&self) -> bool {
        self.lease_until
            .get()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Renews (or takes) the lease; on taking it, the standings are read again, as
    /// another instance may have moved them.
    fn renew_lease(&self, standings: &mut HashMap<String, Standing>) {
        let asked = Instant::now();
        let had = self.lease_held();
        match self
            .feed
            .store
            .hold_lease(&format!("receiver:{}", self.consumer), LEASE_TTL)
        {
            Ok(true) => {
                if !had {
                    *standings = self.load_standings();
                    tracing::info!(receiver = %self.config.name, "this instance delivers the receiver's events");
                }
                self.lease_until.set(Some(asked + LEASE_TRUSTED));
            }
            Ok(false) => {
                if had {
                    tracing::info!(receiver = %self.config.name, "another instance delivers the receiver's events now");
                }
                self.lease_until.set(None);
            }
            Err(e) => {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not renew the receiver's lease");
            }
        }
    }

    fn run(self, stop: &StopSignal) {
        let mut standings = HashMap::new();
        let mut renewed: Option<Instant> = None;
        let mut tenants: Vec<String> = Vec::new();
        let mut listed: Option<Instant> = None;
        let mut commits = self.feed.store.commit_count();
        let mut rechecked = Instant::now();
        // Failures every event would meet (the receiver down, overloaded, its credentials
        // refused) hold the whole receiver: one wait, not one try per tenant.
        let mut whole = Backoff::default();
        let mut first = 0;
        let mut measured = Instant::now();
        while !stop.stopped() {
            if renewed.is_none_or(|at| at.elapsed() >= LEASE_RENEW) {
                renewed = Some(Instant::now());
                self.renew_lease(&mut standings);
            }
            if !self.lease_held() {
                // Another instance delivers (or the database is away): what moved here is
                // saved, and this one waits to take over.
                for (tenant, standing) in &mut standings {
                    if standing.unsaved {
                        self.save(tenant, standing);
                    }
                }
                if stop.sleep(LEASE_RENEW) {
                    break;
                }
                continue;
            }
            if listed.is_none_or(|at| at.elapsed() >= TENANTS_RECHECK) {
                tenants = self.tenants();
                listed = Some(Instant::now());
            }
            let now = Instant::now();
            // A replay asked while an event is retried (to skip one the receiver keeps
            // refusing, say) is taken before the next try.
            let retry_due = whole.due(now)
                || tenants
                    .iter()
                    .any(|t| standings.get(t).is_some_and(|s| s.backoff.due(now)));
            if retry_due || rechecked.elapsed() >= RECHECK {
                rechecked = Instant::now();
                self.recheck(&mut standings);
            }
            let mut progressed = false;
            // One read of every tenant's last event a pass: a tenant with nothing new is
            // not read at all (a receiver of every tenant may follow hundreds).
            let heads = self.feed.store.event_heads().unwrap_or_else(|e| {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not read the feed's heads");
                HashMap::new()
            });
            if whole.open(now) {
                for k in 0..tenants.len() {
                    let at = (first + k) % tenants.len();
                    let tenant = &tenants[at];
                    let standing = standings
                        .entry(tenant.clone())
                        .or_insert_with(|| Standing::new(0));
                    let head = heads.get(tenant).copied().unwrap_or(0);
                    if standing.dead
                        || head <= standing.seq
                        || !standing.backoff.open(Instant::now())
                    {
                        continue;
                    }
                    progressed |= self.deliver_tenant(tenant, standing, &mut whole, stop);
                    if standing.unsaved && standing.saved_at.elapsed() >= SAVE_EVERY {
                        self.save(tenant, standing);
                    }
                    if !whole.open(Instant::now()) {
                        // The next pass starts after this tenant, so that each tenant's
                        // events are tried (and age towards the dead letter) in turn.
                        first = at + 1;
                        break;
                    }
                    if stop.stopped() {
                        break;
                    }
                }
            }
            if !progressed || measured.elapsed() >= SAVE_EVERY {
                measured = Instant::now();
                self.measure_lag(&tenants, &standings, &heads);
            }
            if progressed {
                continue;
            }
            // Idle: whatever moved is saved now.
            for (tenant, standing) in &mut standings {
                if standing.unsaved {
                    self.save(tenant, standing);
                }
            }
            let now = Instant::now();
            let next_try = tenants
                .iter()
                .filter_map(|t| standings.get(t).filter(|s| !s.dead)?.backoff.until)
                .chain(whole.until)
                .filter(|until| *until > now)
                .min();
            let wait = next_try.map_or(IDLE, |at| (at - now).min(IDLE));
            let waiting_for_events = whole.open(now)
                && tenants.iter().any(|t| {
                    standings
                        .get(t)
                        .is_none_or(|s| !s.dead && s.backoff.open(now))
                });
            if waiting_for_events {
                commits = self.feed.store.wait_for_commit(commits, wait);
            } else if stop.sleep(wait) {
                break;
            }
        }
        for (tenant, standing) in &mut standings {
            if standing.unsaved {
                self.save(tenant, standing);
            }
        }
    }

    /// Delivers what `tenant` has after the standing, up to its first failure; whether it
    /// moved.
    fn deliver_tenant(
        &self,
        tenant: &str,
        standing: &mut Standing,
        whole: &mut Backoff,
        stop: &StopSignal,
    ) -> bool {
        let events = match self.feed.store.events(tenant, standing.seq, BATCH) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not read events");
                standing.backoff.failed(None, Duration::from_secs(1));
                return false;
            }
        };
        let mut moved = false;
        for event in events {
            if stop.stopped() || !self.lease_held() {
                break;
            }
            if self.wants(&event) && !self.delivered(&event, standing, whole) {
                break;
            }
            standing.seq = event.seq;
            standing.unsaved = true;
            moved = true;
        }
        moved
    }

    /// How far behind the receiver is, for `/metrics`, from the heads of the pass.
    fn measure_lag(
        &self,
        tenants: &[String],
        standings: &HashMap<String, Standing>,
        heads: &HashMap<String, i64>,
    ) {
        let lag: u64 = tenants
            .iter()
            .map(|t| {
                let at = standings.get(t).map_or(0, |s| s.seq);
                u64::try_from(heads.get(t).copied().unwrap_or(at) - at).unwrap_or(0)
            })
            .sum();
        self.stats.lag_events.store(lag, Ordering::Relaxed);
        if lag == 0 {
            self.stats.oldest_pending.store(0, Ordering::Relaxed);
        }
        self.stats
            .dead
            .store(standings.values().any(|s| s.dead), Ordering::Relaxed);
    }

    /// Tries one event once; whether it passed. A failure sets when the next try may be:
    /// the tenant's, or the whole receiver's when every event would meet it; past the
    /// receiver's age for failing, the tenant is set aside (dead-lettered).
    fn delivered(&self, event: &EventRecord, standing: &mut Standing, whole: &mut Backoff) -> bool {
        let written =
            time::OffsetDateTime::parse(&event.at, &time::format_description::well_known::Rfc3339)
                .map_or(0, |t| t.unix_timestamp());
        self.stats.oldest_pending.store(written, Ordering::Relaxed);
        let (after, error, every_event) = match self.sender.send(&self.feed, event) {
            Outcome::Accepted => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                self.recovered(standing, whole);
                return true;
            }
            Outcome::Dropped => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.recovered(standing, whole);
                return true;
            }
            Outcome::Rejected(why) => {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                self.recovered(standing, whole);
                tracing::warn!(
                    receiver = %self.config.name, tenant = %event.tenant, seq = event.seq,
                    reason = %why, "the receiver refused an event; it is passed"
                );
                return true;
            }
            Outcome::Retry {
                after,
                error,
                whole,
            } => (after, error, whole),
        };
        self.stats.retried.fetch_add(1, Ordering::Relaxed);
        let now = self.feed.clock.now();
        let newly = standing.failing_since.is_none();
        let since = standing
            .failing_since
            .get_or_insert_with(|| scimgate_model::format_timestamp(now))
            .clone();
        standing.last_error = Some(scimgate_model::excerpt(&error, 500).into_owned());
        if failing_for(&since, now) > Duration::from_secs(self.config.dead_after_secs) {
            standing.dead = true;
            standing.backoff = Backoff::default();
            self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                receiver = %self.config.name, tenant = %event.tenant, since = %since,
                error = %error, "the receiver failed for too long and is set aside; `scimgate events enable` resumes it"
            );
            // Committed before the next look at the stored state, which would otherwise
            // read `active` and take it for an operator's `events enable`.
            if let Err(e) = self
                .feed
                .store
                .commit_event_position(self.position(&event.tenant, standing))
            {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not save the dead letter");
            }
            standing.unsaved = false;
            return false;
        }
        if newly {
            tracing::warn!(
                receiver = %self.config.name, tenant = %event.tenant, seq = event.seq,
                error = %error, "delivery failed; retrying"
            );
            self.save(&event.tenant, standing);
        }
        let longest = Duration::from_secs(self.config.max_backoff_secs);
        if every_event {
            whole.failed(after, longest);
        } else {
            standing.backoff.failed(after, longest);
        }
        false
    }

    /// An event passed: whatever failed before is over.
    fn recovered(&self, standing: &mut Standing, whole: &mut Backoff) {
        *whole = Backoff::default();
        standing.backoff = Backoff::default();
        if standing.failing_since.is_some() {
            tracing::info!(receiver = %self.config.name, "receiver recovered");
            standing.failing_since = None;
            standing.last_error = None;
            standing.unsaved = true;
        }
    }

    fn wants(&self, event: &EventRecord) -> bool {
        let wanted = &self.config.events;
        if wanted.is_empty() {
            return true;
        }
        let activation = match event.activation {
            Some(true) => Some("activate"),
            Some(false) => Some("deactivate"),
            None => None,
        };
        wanted
            .iter()
            .any(|w| w == event.kind.name() || Some(w.as_str()) == activation)
    }

    fn tenants(&self) -> Vec<String> {
        if !self.config.tenants.iter().any(|t| t == "*") {
            return self.config.tenants.clone();
        }
        match self.feed.store.access() {
            Ok(access) => {
                // In a steady order, so that taking turns after a failure is fair.
                let mut tenants: Vec<String> = access.tenants.into_iter().collect();
                tenants.sort_unstable();
                tenants
            }
            Err(e) => {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not list tenants");
                Vec::new()
            }
        }
    }

    fn load_standings(&self) -> HashMap<String, Standing> {
        let positions = match self.feed.store.event_positions() {
            Ok(positions) => positions,
            Err(e) => {
                tracing::error!(receiver = %self.config.name, error = %e, "could not read positions");
                Vec::new()
            }
        };
        positions
            .into_iter()
            .filter(|p| p.consumer == self.consumer)
            .map(|p| {
                let mut standing = Standing::new(p.seq);
                standing.dead = p.state == "dead";
                standing.failing_since = p.failing_since;
                standing.last_error = p.last_error;
                (p.tenant, standing)
            })
            .collect()
    }

    /// What the operator changed beside the running server: a replay asked for
    /// (`scimgate events replay`) moves a tenant's position back; a dead receiver whose
    /// stored state says `active` again (`scimgate events enable`) resumes.
    fn recheck(&self, standings: &mut HashMap<String, Standing>) {
        let replays = self
            .feed
            .store
            .take_event_replays(&self.consumer)
            .unwrap_or_else(|e| {
                tracing::warn!(receiver = %self.config.name, error = %e, "could not read replays");
                Vec::new()
            });
        for (tenant, from) in replays {
            tracing::info!(receiver = %self.config.name, tenant, from, "replaying events");
            let standing = standings
                .entry(tenant.clone())
                .or_insert_with(|| Standing::new(0));
            *standing = Standing::new((from - 1).max(0));
            self.feed
                .store
                .reset_event_position(self.position(&tenant, standing));
        }
        if !standings.values().any(|s| s.dead) {
            return;
        }
        let Ok(positions) = self.feed.store.event_positions() else {
            return;
        };
        for p in positions
            .iter()
            .filter(|p| p.consumer == self.consumer && p.state != "dead")
        {
            if let Some(standing) = standings.get_mut(&p.tenant).filter(|s| s.dead) {
                tracing::info!(receiver = %self.config.name, tenant = %p.tenant, "receiver enabled again");
                *standing = Standing::new(p.seq);
            }
        }
    }

    fn position(&self, tenant: &str, standing: &Standing) -> EventPosition {
        EventPosition {
            consumer: self.consumer.clone(),
            tenant: tenant.to_owned(),
            seq: standing.seq,
            updated: scimgate_model::format_timestamp(self.feed.clock.now()),
            state: if standing.dead { "dead" } else { "active" }.into(),
            failing_since: standing.failing_since.clone(),
            last_error: standing.last_error.clone(),
        }
    }

    fn save(&self, tenant: &str, standing: &mut Standing) {
        self.feed
            .store
            .save_event_position(self.position(tenant, standing));
        standing.unsaved = false;
        standing.saved_at = Instant::now();
    }
}

impl Standing {
    fn new(seq: i64) -> Standing {
        Standing {
            seq,
            dead: false,
            failing_since: None,
            last_error: None,
            unsaved: false,
            saved_at: Instant::now(),
            backoff: Backoff::default(),
        }
    }
}

/// 1 s, 2 s, 4 s, … with up to a fifth more at random, so that receivers coming back are
/// not all tried at the same instant.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(16));
    let jitter = base.as_millis() as u64 / 5;
    base + Duration::from_millis(rand_below(jitter + 1))
}

fn rand_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes) % n.max(1)
}

/// How long ago `since` (RFC 3339) was.
fn failing_for(since: &str, now: time::OffsetDateTime) -> Duration {
    time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
        .map(|t| (now - t).try_into().unwrap_or_default())
        .unwrap_or_default()
}
