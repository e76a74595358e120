//! Prometheus metrics, by hand (text exposition format 0.0.4): request counts by route and status,
//! a request latency histogram, gallery size and lockouts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        {
            let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            *m.entry((method.to_owned(), route.to_owned(), status))
                .or_insert(0) += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text, with the gauges passed in.
    pub fn render(&self, gallery_subjects: usize, lockouts_total: u64, locked_now: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP nhm_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE nhm_http_requests_total counter\n");
        {
            let m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "nhm_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP nhm_http_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE nhm_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "nhm_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "nhm_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "nhm_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "nhm_http_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP nhm_gallery_subjects Enrolled subjects.\n# TYPE nhm_gallery_subjects gauge\nnhm_gallery_subjects {gallery_subjects}"
        );
        let _ = writeln!(
            out,
            "# HELP nhm_lockouts_total Subject lockouts after too many failed verifications.\n# TYPE nhm_lockouts_total counter\nnhm_lockouts_total {lockouts_total}"
        );
        let _ = writeln!(
            out,
            "# HELP nhm_locked_subjects Subjects locked now.\n# TYPE nhm_locked_subjects gauge\nnhm_locked_subjects {locked_now}"
        );
        out
    }
}

/// Appends the federated-training figures: event counts by kind, rounds closed, clients.
pub fn render_fed(out: &mut String, snap: &crate::fed::FedSnapshot) {
    let c = &snap.counts;
    out.push_str(
        "# HELP nhm_fed_events_total Federated updates by verdict, dropped clients and empty rounds.\n\
         # TYPE nhm_fed_events_total counter\n",
    );
    for (event, n) in [
        ("accepted", c.accepted),
        ("wrong_round", c.wrong_round),
        ("not_sampled", c.not_sampled),
        ("duplicate", c.duplicate),
        ("malformed", c.malformed),
        ("non_finite", c.non_finite),
        ("outlier", c.outlier),
        ("bad_fields", c.bad_fields),
        ("dropped", c.dropped),
        ("empty_rounds", c.empty_rounds),
    ] {
        let _ = writeln!(out, "nhm_fed_events_total{{event=\"{event}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP nhm_fed_rounds_closed Federated rounds closed.\n# TYPE nhm_fed_rounds_closed counter\nnhm_fed_rounds_closed {}",
        snap.rounds_closed
    );
    let _ = writeln!(
        out,
        "# HELP nhm_fed_clients Registered federated clients.\n# TYPE nhm_fed_clients gauge\nnhm_fed_clients {}",
        snap.clients
    );
    let _ = writeln!(
        out,
        "# HELP nhm_fed_round_open Whether a federated round is open.\n# TYPE nhm_fed_round_open gauge\nnhm_fed_round_open {}",
        u8::from(snap.open_round.is_some())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_histogram() {
        let m = Metrics::default();
        m.observe("POST", "/v1/identify", 200, Duration::from_micros(300));
        m.observe("POST", "/v1/identify", 200, Duration::from_millis(20));
        m.observe("GET", "/healthz", 200, Duration::from_secs(10));
        let text = m.render(7, 1, 0);
        assert!(
            text.contains("nhm_http_requests_total{method=\"POST\",route=\"/v1/identify\",status=\"200\"} 2")
        );
        assert!(text.contains("nhm_http_request_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("nhm_http_request_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("nhm_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("nhm_gallery_subjects 7"));
    }
}
