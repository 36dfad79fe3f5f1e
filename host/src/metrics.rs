//! Prometheus metrics, held in one registry owned by the server (no globals).

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
    pub policies_loaded: Gauge,
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
        let policies_loaded = Gauge::default();
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
            "policies_loaded",
            "Policies currently loaded",
            policies_loaded.clone(),
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
            policies_loaded,
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
        self.requests
            .get_or_create(&RequestLabels {
                connection: connection.to_string(),
                verdict: verdict.to_string(),
            })
            .inc();
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
