//! What `GET /metrics` exposes, in the Prometheus text format (0.0.4), made
//! with the Prometheus project's own client crate.
//!
//! Request metrics are recorded by the route table's dispatcher, which knows
//! each request's route *pattern*: labels take the pattern
//! (`/kyc-bulk/{extern_pub}`), never the raw path, and a fixed set of methods,
//! so that no client can grow the number of series. The database metrics are
//! read at scrape time: the writer's counters from [`WriterStats`], the
//! size and the live registrations from the file.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use warp::http::Method;

use crate::store::WriterStats;
use crate::store::writer::GROUP_BUCKETS;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The route whose request bodies count as received bulk KYC bytes (the
/// route table's test checks that it is a row of the table).
pub const KYC_BULK_UPLOAD: (Method, &str) = (Method::POST, "/kyc-bulk/{extern_pub}");

/// The `route` label of a request that matched no route.
pub const NO_ROUTE: &str = "-";

/// The exposition's own route. Its requests are not counted: Prometheus
/// records every scrape itself (`up`, `scrape_duration_seconds`), and a scrape
/// that moved what it reports would make two scrapes in a row, or a `HEAD`
/// and its `GET`, differ with nothing else happening.
pub const METRICS_ROUTE: &str = "/metrics";

/// Upper bounds of the latency buckets, in seconds: from a cached GET to a
/// large upload.
const LATENCY_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The server's request metrics; the database's are read at scrape time.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: LatencyFamily,
    kyc_bulk_received: Counter,
    kyc_bulk_in_progress: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Read from the file when scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbSnapshot {
    pub size_bytes: u64,
    pub registrations_live: u64,
}

/// An upload being received: counted in progress until dropped (the answer,
/// or the client going away, which drops the handler's future).
pub struct UploadInProgress {
    gauge: Gauge,
    /// Counts the body's bytes as they arrive.
    pub received: Counter,
}

impl Drop for UploadInProgress {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A method as a label: the standard ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The writer's commit groups as a Prometheus histogram: [`WriterStats`]
/// already counts them per bucket.
#[derive(Debug)]
struct CommitGroups {
    /// (upper bound, groups in this bucket alone).
    buckets: Vec<(f64, u64)>,
    jobs: u64,
}

impl EncodeMetric for CommitGroups {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        // The count from the buckets themselves, so that `+Inf` equals it even
        // while a commit is being recorded.
        let count = self.buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(self.jobs as f64, count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            kyc_bulk_received: Counter::default(),
            kyc_bulk_in_progress: Gauge::default(),
        }
    }

    /// Counts one answered request (but not scrapes, see [`METRICS_ROUTE`]).
    pub fn observe(&self, route: &'static str, method: &Method, status: u16, elapsed: Duration) {
        if route == METRICS_ROUTE {
            return;
        }
        let method = method_label(method);
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
        self.durations.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    }

    /// For a request of the bulk KYC upload route: its tracker, held while
    /// the handler runs.
    pub fn upload_started(&self, route: &'static str, method: &Method) -> Option<UploadInProgress> {
        let (upload_method, upload_route) = &KYC_BULK_UPLOAD;
        (route == *upload_route && method == upload_method).then(|| {
            self.kyc_bulk_in_progress.inc();
            UploadInProgress {
                gauge: self.kyc_bulk_in_progress.clone(),
                received: self.kyc_bulk_received.clone(),
            }
        })
    }

    /// The exposition: the request metrics, the writer's (`None` for a store
    /// without one) and the file's.
    pub fn encode(
        &self,
        writer: Option<&WriterStats>,
        db: &DbSnapshot,
        long_polls_waiting: usize,
    ) -> Result<String, fmt::Error> {
        let mut registry = Registry::default();
        registry.register(
            "taler_lite_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            self.requests.clone(),
        );
        registry.register(
            "taler_lite_http_request_duration_seconds",
            "Time from a request's head to its answer's head, by route pattern",
            self.durations.clone(),
        );
        registry.register(
            "taler_lite_kyc_bulk_received_bytes",
            "Bytes of bulk KYC upload bodies received",
            self.kyc_bulk_received.clone(),
        );
        registry.register(
            "taler_lite_kyc_bulk_uploads_in_progress",
            "Bulk KYC uploads being received",
            self.kyc_bulk_in_progress.clone(),
        );
        if let Some(stats) = writer {
            registry.register(
                "taler_lite_db_commits",
                "Write transactions committed by the writer thread",
                ConstCounter::new(stats.commits.load(Ordering::Relaxed)),
            );
            let buckets = GROUP_BUCKETS
                .iter()
                .zip(&stats.group_sizes)
                .map(|(bound, n)| (*bound as f64, n.load(Ordering::Relaxed)))
                .collect();
            registry.register(
                "taler_lite_db_commit_group_jobs",
                "Jobs per committed group (requests that shared one commit and one fsync)",
                CommitGroups { buckets, jobs: stats.jobs.load(Ordering::Relaxed) },
            );
            registry.register(
                "taler_lite_db_writer_queue_jobs",
                "Jobs waiting for the writer thread",
                ConstGauge::new(stats.queued.load(Ordering::Relaxed).max(0)),
            );
        }
        registry.register(
            "taler_lite_db_size_bytes",
            "Size of the database: pages times page size, committed WAL content included",
            ConstGauge::new(gauge_value(db.size_bytes)),
        );
        registry.register(
            "taler_lite_registrations_live",
            "Prepared-transfer registrations that have not expired",
            ConstGauge::new(gauge_value(db.registrations_live)),
        );
        registry.register(
            "taler_lite_long_polls_waiting",
            "Wire Gateway history requests parked until a commit wakes them or they time out",
            ConstGauge::new(gauge_value(long_polls_waiting as u64)),
        );
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_and_histograms_cumulative() {
        let m = Metrics::new();
        m.observe("/config", &Method::GET, 200, Duration::from_millis(2));
        m.observe("/config", &Method::from_bytes(b"BREW").unwrap(), 405, Duration::from_millis(1));
        let stats = WriterStats::default();
        stats.commits.store(3, Ordering::Relaxed);
        stats.jobs.store(5, Ordering::Relaxed);
        stats.group_sizes[0].store(2, Ordering::Relaxed);
        stats.group_sizes[2].store(1, Ordering::Relaxed);
        let text =
            m.encode(Some(&stats), &DbSnapshot { size_bytes: 4096, registrations_live: 7 }, 2).unwrap();
        assert!(
            text.contains(r#"taler_lite_http_requests_total{route="/config",method="GET",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"method="other",status="405""#), "{text}");
        assert!(text.contains("taler_lite_db_commits_total 3\n"), "{text}");
        assert!(text.contains("taler_lite_long_polls_waiting 2\n"), "{text}");
        assert!(text.contains("taler_lite_db_commit_group_jobs_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("taler_lite_db_commit_group_jobs_bucket{le=\"4\"} 3\n"), "{text}");
        assert!(text.contains("taler_lite_db_commit_group_jobs_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("taler_lite_db_commit_group_jobs_sum 5"), "{text}");
        assert!(text.contains("taler_lite_registrations_live 7\n"), "{text}");
    }

    #[test]
    fn only_the_upload_route_is_tracked_and_the_gauge_falls_on_drop() {
        let m = Metrics::new();
        assert!(m.upload_started("/kyc-bulk/{extern_pub}", &Method::GET).is_none());
        assert!(m.upload_started("/config", &Method::POST).is_none());
        let upload = m.upload_started("/kyc-bulk/{extern_pub}", &Method::POST).unwrap();
        upload.received.inc_by(10);
        assert_eq!(m.kyc_bulk_in_progress.get(), 1);
        drop(upload);
        assert_eq!((m.kyc_bulk_in_progress.get(), m.kyc_bulk_received.get()), (0, 10));
    }
}
