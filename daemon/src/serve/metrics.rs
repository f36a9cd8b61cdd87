//! The daemon's Prometheus metrics, served at `/metrics`.
//!
//! Label values come from closed sets (severity, source kind, confidence, outcome), rule ids
//! from the rule pack, and source names from the config file: never a path, a secret or
//! anything a scanned input controls. Counters that alerts take `increase()` of are created at 0 for every label
//! value at start, so the first event is seen as an increase.

use crate::finding::SourceKind;
use crate::store::OpenCount;
use keyward_detectors::Confidence;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Severities, as label values.
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Every metric of the daemon.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Open findings by severity, rule, source kind and confidence (refreshed from the store).
    pub findings_open: IntGaugeVec,
    /// Findings created, by severity, source kind and confidence (4 x 3 x 3 series).
    pub findings_new: IntCounterVec,
    /// Scans by source kind and outcome.
    pub scans: IntCounterVec,
    /// Bytes scanned.
    pub scanned_bytes: IntCounterVec,
    /// Files and blobs scanned.
    pub scanned_objects: IntCounterVec,
    /// Image layers scanned.
    pub scanned_layers: IntCounter,
    /// Scan wall time.
    pub scan_duration: HistogramVec,
    /// Jobs queued or running (all daemons sharing the store).
    pub queue_depth: IntGauge,
    /// Content created → finding stored.
    pub time_to_detect: HistogramVec,
    /// Last successful scan per source (unix seconds; 0 = never).
    pub source_last_success: GaugeVec,
    /// 1 per configured source.
    pub source_configured: IntGaugeVec,
    /// 1 when the last store operation worked.
    pub store_up: IntGauge,
    /// Failed scan attempts by source kind (each retry counts).
    pub scan_errors: IntCounterVec,
    /// Config reloads by outcome.
    pub reloads: IntCounterVec,
    /// HTTP API requests refused for a missing or wrong token.
    pub unauthorized: IntCounter,
    /// Time from a hook's notification to its job starting.
    pub notify_to_start: Histogram,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &Registry) -> Metrics {
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names are unique and valid");
            c
        }
        let kinds = ["git", "image", "file"];
        let m = Metrics {
            registry: registry.clone(),
            findings_open: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new("keyward_findings_open", "Open findings (one per secret)."),
                    &["severity", "rule", "source_kind", "confidence"],
                )
                .expect("valid"),
            ),
            findings_new: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_findings_new_total", "Findings created (new secrets)."),
                    &["severity", "source_kind", "confidence"],
                )
                .expect("valid"),
            ),
            scans: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_scans_total", "Scans run, by outcome."),
                    &["source_kind", "outcome"],
                )
                .expect("valid"),
            ),
            scanned_bytes: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_scanned_bytes_total", "Bytes scanned."),
                    &["source_kind"],
                )
                .expect("valid"),
            ),
            scanned_objects: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_scanned_objects_total", "Files and blobs scanned."),
                    &["source_kind"],
                )
                .expect("valid"),
            ),
            scanned_layers: reg(
                registry,
                IntCounter::new("keyward_scanned_layers_total", "Image layers scanned.")
                    .expect("valid"),
            ),
            scan_duration: reg(
                registry,
                HistogramVec::new(
                    HistogramOpts::new("keyward_scan_duration_seconds", "Scan wall time.")
                        .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0]),
                    &["source_kind"],
                )
                .expect("valid"),
            ),
            queue_depth: reg(
                registry,
                IntGauge::new("keyward_queue_depth", "Scan jobs queued or running.")
                    .expect("valid"),
            ),
            time_to_detect: reg(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "keyward_time_to_detect_seconds",
                        "From the leaked content's creation (commit or image date) to its finding being stored.",
                    )
                    .buckets(vec![1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0, 604_800.0, 2_592_000.0, 31_536_000.0]),
                    &["source_kind"],
                )
                .expect("valid"),
            ),
            source_last_success: reg(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "keyward_source_last_success_timestamp_seconds",
                        "Unix time of the source's last successful scan (0: never).",
                    ),
                    &["source"],
                )
                .expect("valid"),
            ),
            source_configured: reg(
                registry,
                IntGaugeVec::new(
                    Opts::new("keyward_source_configured", "1 for each configured source."),
                    &["source", "source_kind"],
                )
                .expect("valid"),
            ),
            store_up: reg(
                registry,
                IntGauge::new("keyward_store_up", "1 when the last store operation succeeded.")
                    .expect("valid"),
            ),
            scan_errors: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_scan_errors_total", "Failed scan attempts (each retry counts)."),
                    &["source_kind"],
                )
                .expect("valid"),
            ),
            reloads: reg(
                registry,
                IntCounterVec::new(
                    Opts::new("keyward_config_reloads_total", "Configuration reloads (SIGHUP)."),
                    &["outcome"],
                )
                .expect("valid"),
            ),
            unauthorized: reg(
                registry,
                IntCounter::new(
                    "keyward_api_unauthorized_total",
                    "API requests refused for a missing or wrong bearer token.",
                )
                .expect("valid"),
            ),
            notify_to_start: reg(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "keyward_notify_to_scan_start_seconds",
                        "From a hook's notification to its scan starting.",
                    )
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
                )
                .expect("valid"),
            ),
        };
        let build = reg(
            registry,
            IntGaugeVec::new(
                Opts::new("keyward_build_info", "The running keyward version."),
                &["version"],
            )
            .expect("valid"),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for kind in kinds {
            for sev in SEVERITIES {
                for confidence in Confidence::ALL {
                    m.findings_new
                        .with_label_values(&[sev, kind, confidence.as_str()]);
                }
            }
            for outcome in ["ok", "failed"] {
                m.scans.with_label_values(&[kind, outcome]);
            }
            m.scanned_bytes.with_label_values(&[kind]);
            m.scanned_objects.with_label_values(&[kind]);
            m.scan_errors.with_label_values(&[kind]);
        }
        for outcome in ["ok", "failed"] {
            m.reloads.with_label_values(&[outcome]);
        }
        m
    }

    /// Replaces the open-findings gauge with the store's counts.
    pub fn set_open(&self, counts: &[OpenCount]) {
        self.findings_open.reset();
        for c in counts {
            self.findings_open
                .with_label_values(&[&c.severity, &c.rule, &c.source_kind, &c.confidence])
                .set(i64::try_from(c.count).unwrap_or(i64::MAX));
        }
    }

    /// Sets the configured-sources gauges (on start and reload); sources no longer configured
    /// disappear.
    pub fn set_sources(
        &self,
        sources: &[(String, SourceKind)],
        last_success: &dyn Fn(&str) -> f64,
    ) {
        self.source_configured.reset();
        self.source_last_success.reset();
        for (name, kind) in sources {
            self.source_configured
                .with_label_values(&[name.as_str(), kind.as_str()])
                .set(1);
            self.source_last_success
                .with_label_values(&[name.as_str()])
                .set(last_success(name));
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding metrics into memory cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}
