//! Prometheus metrics of the correlator, served as text on `--metrics-addr`.
//!
//! - `lastseen_records_in_total{topic}`, `lastseen_records_out_total{topic}`
//! - `lastseen_dead_letters_total{topic}`: records sent to the dead-letter topic
//! - `lastseen_consumer_lag{topic,partition}`: records behind the end of each partition
//! - `lastseen_state_rows{table}`: rows per state table
//! - `lastseen_correlation_seconds`: how long the last correlation took
//! - `lastseen_candidates{decision}`: candidates of the last correlation
//! - `lastseen_correlations_total`
//! - `lastseen_assigned_partitions{topic}`: Central partitions this instance owns

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::state::StateRows;

/// One series: a metric name and its labels.
type Series = (&'static str, Vec<(&'static str, String)>);

/// The metrics, shared between the correlator and the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<Series, f64>>,
}

const HELP: [(&str, &str, &str); 9] = [
    (
        "lastseen_records_in_total",
        "counter",
        "Records consumed, per topic.",
    ),
    (
        "lastseen_records_out_total",
        "counter",
        "Records produced and acknowledged, per topic.",
    ),
    (
        "lastseen_dead_letters_total",
        "counter",
        "Records sent to the dead-letter topic.",
    ),
    (
        "lastseen_consumer_lag",
        "gauge",
        "Records behind the end of each partition.",
    ),
    ("lastseen_state_rows", "gauge", "Rows per state table."),
    (
        "lastseen_correlation_seconds",
        "gauge",
        "Duration of the last correlation.",
    ),
    (
        "lastseen_candidates",
        "gauge",
        "Candidates of the last correlation, per decision.",
    ),
    (
        "lastseen_correlations_total",
        "counter",
        "Correlations run.",
    ),
    (
        "lastseen_assigned_partitions",
        "gauge",
        "Partitions of the Central topic this instance owns.",
    ),
];

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<Series, f64>) -> R) -> R {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut values)
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: f64) {
        let key = (name, own(labels));
        self.with(|values| *values.entry(key).or_default() += by);
    }

    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (name, own(labels));
        self.with(|values| values.insert(key, value));
    }

    /// The current value of a series, for tests and logs.
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let key = (name, own(labels));
        self.with(|values| values.get(&key).copied().unwrap_or_default())
    }

    pub fn state_rows(&self, rows: &StateRows) {
        let tables = [
            ("tenants", rows.tenants),
            ("endpoints", rows.endpoints),
            ("pending_endpoints", rows.pending_endpoints),
            ("computers", rows.computers),
            ("users", rows.users),
            ("groups", rows.groups),
            ("actions", rows.actions),
            ("rejects", rows.rejects),
        ];
        for (table, count) in tables {
            self.set("lastseen_state_rows", &[("table", table)], count as f64);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let values = self.with(|values| values.clone());
        let mut out = String::new();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((series, labels), value) in values.iter().filter(|((n, _), _)| *n == name) {
                out.push_str(series);
                if !labels.is_empty() {
                    let shown: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| {
                            format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                        })
                        .collect();
                    let _ = write!(out, "{{{}}}", shown.join(","));
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

fn own(labels: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// Serves `/metrics` until the process ends. Binding fails loudly; serving errors are logged.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    metrics.render(),
                )
            }
        }),
    );
    info!(addr = %bound, "Serving metrics.");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            warn!(%error, "The metrics endpoint stopped.");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.add(
            "lastseen_records_in_total",
            &[("topic", "lastseen.actions")],
            2.0,
        );
        metrics.add(
            "lastseen_records_in_total",
            &[("topic", "lastseen.actions")],
            3.0,
        );
        metrics.set("lastseen_candidates", &[("decision", "delete")], 8.0);
        metrics.set("lastseen_correlation_seconds", &[], 1.5);

        let text = metrics.render();
        assert!(
            text.contains("lastseen_records_in_total{topic=\"lastseen.actions\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("lastseen_candidates{decision=\"delete\"} 8\n"),
            "{text}"
        );
        assert!(
            text.contains("lastseen_correlation_seconds 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE lastseen_consumer_lag gauge\n"),
            "{text}"
        );
    }
}
