//! Prometheus metrics at `/metrics`: requests by route and status with latency, plugin
//! calls with their outcome and duration, rate-limit refusals, and the store's counters.
//! Labels come from bounded sets only (route patterns, not paths; plugin names from the
//! configuration), so a client cannot grow the series without limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use scimgate_store::StoreStats;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limiter: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request latencies from 0.1 ms to about 5.9 s (0.1 ms × 3^10).
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 3.0, 11))
}

/// Plugin call durations from 10 µs to about 0.6 s.
fn plugin_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 3.0, 11))
}

/// What a plugin call came to, as counted.
#[derive(Debug, Clone, Copy)]
pub enum PluginOutcome {
    Accept,
    Modify,
    Reject,
    /// Trap, deadline, memory, bad output; `on_failure` decides what the write does.
    Failed,
}

impl PluginOutcome {
    pub fn label(self) -> &'static str {
        match self {
            PluginOutcome::Accept => "accept",
            PluginOutcome::Modify => "modify",
            PluginOutcome::Reject => "reject",
            PluginOutcome::Failed => "failed",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    plugin_calls: Family<PluginOutcomeLabels, Counter>,
    plugin_seconds: HistogramFamily<PluginLabels>,
    rate_limited: Family<LimitLabels, Counter>,
    /// The store's counters for the scrape under way (`scraping` held).
    store_stats: Arc<Mutex<StoreStats>>,
    /// The change feed's figures for the scrape under way.
    feed: Arc<Mutex<FeedFigures>>,
    /// One scrape at a time, so each shows the counters it was handed.
    scraping: Mutex<()>,
    /// Each plugin's calls and times as the admin page shows them.
    plugin_figures: Mutex<std::collections::BTreeMap<String, PluginFigures>>,
}

/// One plugin's calls since the start, by outcome, and their time.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginFigures {
    pub accepted: u64,
    pub modified: u64,
    pub rejected: u64,
    pub failed: u64,
    pub total_micros: u64,
    pub max_micros: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The metrics of one server. The store's counters are not held here: the scrape hands
    /// them in (`encode`), so that nothing but its owner keeps the store alive.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scimgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status",
            requests.clone(),
        );
        let request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(request_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from receiving a request to its response, by method and route pattern",
            request_seconds.clone(),
        );
        let plugin_calls = Family::<PluginOutcomeLabels, Counter>::default();
        registry.register(
            "plugin_calls",
            "Plugin calls, by plugin and outcome (accept, modify, reject, failed)",
            plugin_calls.clone(),
        );
        let plugin_seconds: HistogramFamily<PluginLabels> =
            Family::new_with_constructor(plugin_histogram);
        registry.register(
            "plugin_call_duration_seconds",
            "Duration of one plugin call, fresh instance included",
            plugin_seconds.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429, by limiter",
            rate_limited.clone(),
        );
        let store_stats = Arc::new(Mutex::new(StoreStats::default()));
        registry.register_collector(Box::new(StoreCollector(Arc::clone(&store_stats))));
        let feed = Arc::new(Mutex::new(FeedFigures::default()));
        registry.register_collector(Box::new(FeedCollector(Arc::clone(&feed))));
        Metrics {
            registry,
            store_stats,
            feed,
            scraping: Mutex::new(()),
            plugin_figures: Mutex::default(),
            requests,
            request_seconds,
            plugin_calls,
            plugin_seconds,
            rate_limited,
        }
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn observe_plugin(&self, plugin: &str, outcome: PluginOutcome, took: Duration) {
        self.plugin_calls
            .get_or_create(&PluginOutcomeLabels {
                plugin: plugin.to_owned(),
                outcome: outcome.label(),
            })
            .inc();
        self.plugin_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .observe(took.as_secs_f64());
        if let Ok(mut figures) = self.plugin_figures.lock() {
            let f = figures.entry(plugin.to_owned()).or_default();
            match outcome {
                PluginOutcome::Accept => f.accepted += 1,
                PluginOutcome::Modify => f.modified += 1,
                PluginOutcome::Reject => f.rejected += 1,
                PluginOutcome::Failed => f.failed += 1,
            }
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            f.total_micros = f.total_micros.saturating_add(micros);
            f.max_micros = f.max_micros.max(micros);
        }
    }

    /// Each plugin's figures since the start, by name.
    pub fn plugin_figures(&self) -> std::collections::BTreeMap<String, PluginFigures> {
        self.plugin_figures
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    pub fn count_rate_limited(&self, limiter: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limiter })
            .inc();
    }

    /// The OpenMetrics text exposition, with the store's counters as of now.
    pub fn encode(&self, store: StoreStats, feed: FeedFigures) -> String {
        let _one_at_a_time = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *self
            .store_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = store;
        *self
            .feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = feed;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The change feed as a scrape sees it: events written, and each receiver's counters.
#[derive(Debug, Clone, Default)]
pub struct FeedFigures {
    pub events_written: u64,
    pub receivers: Vec<ReceiverFigures>,
}

#[derive(Debug, Clone, Default)]
pub struct ReceiverFigures {
    pub name: String,
    pub delivered: u64,
    pub retried: u64,
    pub rejected: u64,
    pub dead_lettered: u64,
    pub lag_events: u64,
    pub lag_seconds: u64,
    pub dead: bool,
}

struct FeedCollector(Arc<Mutex<FeedFigures>>);

impl std::fmt::Debug for FeedCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedCollector")
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReceiverLabels {
    receiver: String,
}

impl Collector for FeedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let feed = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let written = ConstCounter::new(feed.events_written as f64);
        written.encode(encoder.encode_descriptor(
            "events_written",
            "Events written to the change feed's outbox, every tenant together",
            None,
            written.metric_type(),
        )?)?;
        type Pick = fn(&ReceiverFigures) -> u64;
        let counters: [(&str, &str, Pick); 4] = [
            ("events_delivered", "Events a receiver accepted", |r| {
                r.delivered
            }),
            (
                "events_retried",
                "Deliveries tried again after a failure",
                |r| r.retried,
            ),
            (
                "events_rejected",
                "Events a receiver refused (400), passed over",
                |r| r.rejected,
            ),
            (
                "events_dead_lettered",
                "Times a receiver was set aside for failing too long",
                |r| r.dead_lettered,
            ),
        ];
        for (name, help, pick) in counters {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for r in &feed.receivers {
                let labels = ReceiverLabels {
                    receiver: r.name.clone(),
                };
                ConstCounter::new(pick(r) as f64).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, Pick); 3] = [
            (
                "events_lag",
                "Events not yet delivered to a receiver",
                |r| r.lag_events,
            ),
            (
                "events_lag_seconds",
                "Age of the oldest event not yet delivered to a receiver",
                |r| r.lag_seconds,
            ),
            (
                "events_receiver_dead",
                "1 when a receiver is dead-lettered",
                |r| u64::from(r.dead),
            ),
        ];
        for (name, help, pick) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for r in &feed.receivers {
                let labels = ReceiverLabels {
                    receiver: r.name.clone(),
                };
                ConstGauge::new(i64::try_from(pick(r)).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The store's counters, as the last scrape handed them in.
struct StoreCollector(Arc<Mutex<StoreStats>>);

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCollector")
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut counter = |name: &str, help: &str, value: f64| {
            let c = ConstCounter::new(value);
            let e = encoder.encode_descriptor(name, help, None, c.metric_type())?;
            c.encode(e)
        };
        counter(
            "store_writes",
            "Writes committed or refused by the store",
            stats.writes as f64,
        )?;
        counter(
            "store_commits",
            "Write transactions (group commits); writes / commits is writes per fsync",
            stats.commits as f64,
        )?;
        counter(
            "store_commit_seconds",
            "Time spent in write transactions, BEGIN to durable COMMIT",
            stats.commit_micros as f64 / 1e6,
        )?;
        counter(
            "store_read_checkouts",
            "Read connections taken from the pool",
            stats.read_checkouts as f64,
        )?;
        counter(
            "store_read_wait_seconds",
            "Time spent waiting for a read connection from the pool",
            stats.read_wait_micros as f64 / 1e6,
        )?;
        for (name, help, value) in [
            (
                "store_read_connections",
                "Read-only connections open in the pool",
                stats.read_connections,
            ),
            (
                "store_idle_read_connections",
                "Read-only connections idle in the pool",
                stats.idle_read_connections,
            ),
        ] {
            let g = ConstGauge::new(i64::from(value));
            let e = encoder.encode_descriptor(name, help, None, g.metric_type())?;
            g.encode(e)?;
        }
        Ok(())
    }
}
