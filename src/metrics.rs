//! Prometheus metrics. Every label value is a static category (kind, verb, result,
//! reason), never error text, so cardinality stays bounded.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels: kind and result of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `EmailProvider`, `ExchangeServiceAccount` or `MailboxBinding`.
    pub kind: &'static str,
    /// `success` or an error category / condition reason.
    pub result: &'static str,
}

/// Labels: the kind alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The kind.
    pub kind: &'static str,
}

/// Labels: HTTP verb of a Kubernetes API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// `get`, `list`, `watch`, `create`, `update`, `patch` or `delete`.
    pub verb: &'static str,
}

/// Labels: result of a token request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or a condition reason.
    pub result: &'static str,
}

/// Labels: an Exchange probe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `ews` or `graph`.
    pub service: &'static str,
    /// `success` or a condition reason.
    pub result: &'static str,
}

/// Labels: objects by kind and Ready status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// The kind.
    pub kind: &'static str,
    /// `True`, `False` or `Unknown`.
    pub ready: &'static str,
}

/// All of mailops' metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    kube_requests: Family<VerbLabels, Counter>,
    token_requests: Family<ResultLabels, Counter>,
    probes: Family<ProbeLabels, Counter>,
    objects: Family<ObjectLabels, Gauge>,
    last_verification: Family<KindLabels, Gauge>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Register `metric` as `name` with `help`, and hand it back (the registry keeps a clone).
fn registered<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Create and register every metric under the `mailops` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mailops");
        let r = &mut registry;
        let durations = || Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        Metrics {
            reconciles: registered(
                r,
                "reconciles",
                "Reconciles by kind and result",
                Family::default(),
            ),
            reconcile_duration: registered(
                r,
                "reconcile_duration_seconds",
                "Time spent in one reconcile, by kind",
                Family::new_with_constructor(durations),
            ),
            kube_requests: registered(
                r,
                "kube_requests",
                "Requests to the Kubernetes API by verb",
                Family::default(),
            ),
            token_requests: registered(
                r,
                "token_requests",
                "OAuth 2.0 token requests by result",
                Family::default(),
            ),
            probes: registered(
                r,
                "exchange_probes",
                "Exchange probes by service and result",
                Family::default(),
            ),
            objects: registered(
                r,
                "objects",
                "mailops objects by kind and Ready status",
                Family::default(),
            ),
            last_verification: registered(
                r,
                "last_verification_timestamp_seconds",
                "When Exchange last confirmed an object of this kind (Unix seconds): the exact time, where status.lastVerifiedTime moves at most daily",
                Family::default(),
            ),
            leader: registered(
                r,
                "leader",
                "1 while this replica holds the leader Lease (or runs without leader election), else 0",
                Gauge::default(),
            ),
            registry,
        }
    }

    /// Exchange confirmed an object of `kind` at `at` (Unix seconds).
    pub fn verified(&self, kind: &'static str, at: i64) {
        let gauge = self.last_verification.get_or_create(&KindLabels { kind });
        gauge.set(gauge.get().max(at));
    }

    /// Count one finished reconcile and its duration.
    pub fn record_reconcile(&self, kind: &'static str, result: &'static str, duration: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(duration.as_secs_f64());
    }

    /// Count one Kubernetes API request.
    pub fn record_kube_request(&self, verb: &'static str) {
        self.kube_requests.get_or_create(&VerbLabels { verb }).inc();
    }

    /// Count one token request sent to the authority.
    pub fn record_token_request(&self, result: &'static str) {
        self.token_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Count one Exchange probe.
    pub fn record_probe(&self, service: &'static str, result: &'static str) {
        self.probes
            .get_or_create(&ProbeLabels { service, result })
            .inc();
    }

    /// Set how many objects of a kind have a Ready status.
    pub fn set_objects(&self, kind: &'static str, ready: &'static str, count: i64) {
        self.objects
            .get_or_create(&ObjectLabels { kind, ready })
            .set(count);
    }

    /// Set whether this replica is the one acting (`mailops_leader`).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The same samples in Prometheus's classic text format (0.0.4), what `/metrics`
    /// answers every client that does not ask for OpenMetrics (curl, `promtool check
    /// metrics`): a counter's HELP and TYPE name its `_total` samples, and OpenMetrics'
    /// `# UNIT` and `# EOF` lines go.
    pub fn encode_prometheus_text(&self) -> String {
        classic_text(&self.encode())
    }
}

/// OpenMetrics text as classic Prometheus text: see [`Metrics::encode_prometheus_text`].
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_show_up_with_static_labels() {
        let m = Metrics::new();
        m.record_reconcile("MailboxBinding", "success", Duration::from_millis(20));
        m.record_token_request("InvalidCredentials");
        m.set_objects("EmailProvider", "True", 3);
        let text = m.encode();
        assert!(
            text.contains(r#"mailops_reconciles_total{kind="MailboxBinding",result="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mailops_token_requests_total{result="InvalidCredentials"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mailops_objects{kind="EmailProvider",ready="True"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("mailops_reconcile_duration_seconds_bucket"),
            "{text}"
        );
        // Served before any sample, so "not leading" is 0 rather than absent.
        assert!(text.contains("mailops_leader 0"), "{text}");
        m.set_leader(true);
        assert!(m.encode().contains("mailops_leader 1"));
    }

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let m = Metrics::new();
        m.record_token_request("success");
        let text = m.encode_prometheus_text();
        assert!(
            text.contains("# HELP mailops_token_requests_total "),
            "{text}"
        );
        assert!(
            text.contains("# TYPE mailops_token_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE mailops_leader gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("mailops_token_requests_total{result=\"success\"} 1\n"));
    }
}
