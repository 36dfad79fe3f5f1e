//! Prometheus metrics, held in one registry owned by the server (no globals).
//!
//! What is exported, all prefixed `gatehouse_`: requests by connection and
//! verdict; policy decisions by policy and outcome; policy latency
//! histograms; policy failures by kind; policy loads by result and load
//! errors by policy; policies loaded; open client sessions by connection;
//! approvals waiting; the audit backlog, write errors and records written.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub policy: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub policy: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

impl ResultLabel {
    pub fn ok() -> Self {
        Self {
            result: "ok".into(),
        }
    }
    pub fn error() -> Self {
        Self {
            result: "error".into(),
        }
    }
}

/// One connection's request counters by verdict, kept by a session
/// (see [`Metrics::request_kept`]).
#[derive(Default)]
pub struct KeptRequestCounters(Vec<(&'static str, Counter)>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub connection: String,
    pub verdict: String,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~5 s
    Histogram::new(exponential_buckets(0.000_01, 2.5, 15))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub policy_latency: Family<PolicyLabel, Histogram, fn() -> Histogram>,
    pub policy_failures: Family<FailureLabels, Counter>,
    pub reloads: Family<ResultLabel, Counter>,
    pub policy_load_errors: Family<PolicyLabel, Counter>,
    pub policies_loaded: Gauge,
    pub sessions_open: Family<ConnectionLabel, Gauge>,
    pub approvals_waiting: Gauge,
    pub audit_backlog: Gauge,
    pub audit_write_errors: Counter,
    pub audit_records_written: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        let policy_latency =
            Family::<PolicyLabel, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        let policy_failures = Family::<FailureLabels, Counter>::default();
        let reloads = Family::<ResultLabel, Counter>::default();
        let policy_load_errors = Family::<PolicyLabel, Counter>::default();
        let policies_loaded = Gauge::default();
        let sessions_open = Family::<ConnectionLabel, Gauge>::default();
        let approvals_waiting = Gauge::default();
        let audit_backlog = Gauge::default();
        let audit_write_errors = Counter::default();
        let audit_records_written = Counter::default();
        registry.register(
            "requests",
            "Requests handled, by connection and verdict",
            requests.clone(),
        );
        registry.register(
            "policy_decisions",
            "Policy decisions, by policy and outcome",
            decisions.clone(),
        );
        registry.register(
            "policy_latency_seconds",
            "Time per policy call, instantiation included",
            policy_latency.clone(),
        );
        registry.register(
            "policy_failures",
            "Policy calls that trapped, timed out or returned bad output",
            policy_failures.clone(),
        );
        registry.register("policy_reloads", "Policy loads, by result", reloads.clone());
        registry.register(
            "policy_load_errors",
            "Policy loads that failed (the last good version stays), by policy",
            policy_load_errors.clone(),
        );
        registry.register(
            "policies_loaded",
            "Policies currently loaded",
            policies_loaded.clone(),
        );
        registry.register(
            "sessions_open",
            "Client sessions open now, by connection",
            sessions_open.clone(),
        );
        registry.register(
            "approvals_waiting",
            "Requests held for a person's decision now",
            approvals_waiting.clone(),
        );
        registry.register(
            "audit_backlog",
            "Audit records waiting to be written",
            audit_backlog.clone(),
        );
        registry.register(
            "audit_write_errors",
            "Failed audit store writes",
            audit_write_errors.clone(),
        );
        registry.register(
            "audit_records_written",
            "Audit records written",
            audit_records_written.clone(),
        );
        Self {
            registry,
            requests,
            decisions,
            policy_latency,
            policy_failures,
            reloads,
            policy_load_errors,
            policies_loaded,
            sessions_open,
            approvals_waiting,
            audit_backlog,
            audit_write_errors,
            audit_records_written,
        }
    }

    pub fn policy_decision(&self, policy: &str, outcome: &str, elapsed: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                policy: policy.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.policy_latency
            .get_or_create(&PolicyLabel {
                policy: policy.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn policy_failure(&self, policy: &str, kind: &str) {
        self.policy_failures
            .get_or_create(&FailureLabels {
                policy: policy.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }

    pub fn request(&self, connection: &str, verdict: &str) {
        self.request_counter(connection, verdict).inc();
    }

    /// The requests counter of `connection` and `verdict` (a shared handle).
    fn request_counter(&self, connection: &str, verdict: &str) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                connection: connection.to_string(),
                verdict: verdict.to_string(),
            })
            .clone()
    }

    /// [`Metrics::request`] for a caller that counts many requests: each
    /// verdict's counter is looked up once and kept in `kept`, so counting
    /// takes no lock, no hashing and no allocation after that.
    pub fn request_kept(
        &self,
        connection: &str,
        verdict: &'static str,
        kept: &mut KeptRequestCounters,
    ) {
        if let Some((_, c)) = kept.0.iter().find(|(v, _)| *v == verdict) {
            c.inc();
            return;
        }
        let counter = self.request_counter(connection, verdict);
        counter.inc();
        kept.0.push((verdict, counter));
    }

    /// A failed policy load (a reload that kept the last good version).
    pub fn policy_load_failed(&self, policy: &str) {
        self.policy_load_errors
            .get_or_create(&PolicyLabel {
                policy: policy.to_string(),
            })
            .inc();
    }

    /// Counts a client session on `connection` as open until the guard drops.
    pub fn session_opened(&self, connection: &str) -> OpenSession {
        let gauge = self
            .sessions_open
            .get_or_create(&ConnectionLabel {
                connection: connection.to_string(),
            })
            .clone();
        gauge.inc();
        OpenSession(gauge)
    }

    /// Client sessions open now on `connection`.
    pub fn open_sessions(&self, connection: &str) -> i64 {
        self.sessions_open
            .get_or_create(&ConnectionLabel {
                connection: connection.to_string(),
            })
            .get()
    }

    /// How many requests wait for a person's decision (set by the approvals
    /// broker whenever its set of waiting requests changes).
    pub fn set_approvals_waiting(&self, n: usize) {
        self.approvals_waiting
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// An open client session, counted in `gatehouse_sessions_open` until dropped.
pub struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_metric_is_exported() {
        let m = Metrics::new();
        m.request("api", "allow");
        m.policy_decision("guard", "deny", Duration::from_micros(30));
        m.policy_failure("guard", "timeout");
        m.policy_load_failed("guard");
        m.set_approvals_waiting(2);
        let open = m.session_opened("api");
        let second = m.session_opened("api");
        assert_eq!(m.open_sessions("api"), 2);
        drop(second);
        assert_eq!(m.open_sessions("api"), 1);
        let text = m.encode();
        for line in [
            "gatehouse_requests_total{connection=\"api\",verdict=\"allow\"} 1",
            "gatehouse_policy_decisions_total{policy=\"guard\",outcome=\"deny\"} 1",
            "gatehouse_policy_latency_seconds_count{policy=\"guard\"} 1",
            "gatehouse_policy_failures_total{policy=\"guard\",kind=\"timeout\"} 1",
            "gatehouse_policy_load_errors_total{policy=\"guard\"} 1",
            "gatehouse_sessions_open{connection=\"api\"} 1",
            "gatehouse_approvals_waiting 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        drop(open);
        assert_eq!(m.open_sessions("api"), 0);
    }
}
