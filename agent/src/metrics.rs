//! Prometheus metrics and the `/metrics`, `/live`, `/ready` endpoint.
//!
//! Label values come from closed sets: profile names from the config (or `unknown` for ledger
//! entries of profiles no longer configured), error kinds from [`VaultError::kind`].

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing::{debug, warn};

use crate::vault::VaultError;

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions_active: IntGauge,
    leases_active: IntGauge,
    issued: IntCounterVec,
    revoked: IntCounterVec,
    revoke_failed: IntCounterVec,
    denied: IntCounterVec,
    revocation_seconds: Histogram,
    vault_errors: IntCounterVec,
    token_ttl: Gauge,
    ready: AtomicBool,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let issued = counter(
            "keyward_agent_credentials_issued_total",
            "Credentials issued to builds.",
            &["profile"],
        );
        let revoked = counter(
            "keyward_agent_credentials_revoked_total",
            "Credentials revoked and verified gone.",
            &["profile"],
        );
        let revoke_failed = counter(
            "keyward_agent_revoke_failures_total",
            "Revocation attempts that failed (each is retried).",
            &["profile"],
        );
        let denied = counter(
            "keyward_agent_denied_total",
            "Requests refused by a profile's allow-list.",
            &["profile"],
        );
        let vault_errors = counter(
            "keyward_agent_vault_errors_total",
            "Failed Vault calls by kind.",
            &["kind"],
        );
        let sessions_active =
            IntGauge::new("keyward_agent_sessions_active", "Live sessions.").expect("valid metric");
        let leases_active = IntGauge::new(
            "keyward_agent_leases_active",
            "Leases, tokens and certificates not yet revoked.",
        )
        .expect("valid metric");
        let revocation_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "keyward_agent_revocation_duration_seconds",
                "Time from session end to every credential verified revoked.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let token_ttl = Gauge::new(
            "keyward_agent_token_ttl_seconds",
            "TTL left on the agent's own Vault token (-1: does not expire).",
        )
        .expect("valid metric");
        for m in [
            Box::new(sessions_active.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(leases_active.clone()),
            Box::new(revocation_seconds.clone()),
            Box::new(token_ttl.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Self {
            registry: registry.clone(),
            sessions_active,
            leases_active,
            issued,
            revoked,
            revoke_failed,
            denied,
            revocation_seconds,
            vault_errors,
            token_ttl,
            ready: AtomicBool::new(false),
        }
    }

    /// A session opened (+1) or ended (-1).
    pub fn session_delta(&self, d: i64) {
        self.sessions_active.add(d);
    }

    /// A credential was issued.
    pub fn issued(&self, profile: &str) {
        self.issued.with_label_values(&[profile]).inc();
        self.leases_active.inc();
    }

    /// A credential from an earlier run was found in the ledger.
    pub fn adopted(&self) {
        self.leases_active.inc();
    }

    /// A credential was revoked (or has certainly expired).
    pub fn revoked(&self, profile: &str) {
        self.revoked.with_label_values(&[profile]).inc();
        self.leases_active.dec();
    }

    /// A revocation attempt failed.
    pub fn revoke_failed(&self, profile: &str) {
        self.revoke_failed.with_label_values(&[profile]).inc();
    }

    /// A request was denied.
    pub fn denied(&self, profile: &str) {
        self.denied.with_label_values(&[profile]).inc();
    }

    /// Session end to all-revoked.
    pub fn revocation_latency(&self, d: Duration) {
        self.revocation_seconds.observe(d.as_secs_f64());
    }

    /// A Vault call failed.
    pub fn vault_error(&self, e: &VaultError) {
        self.vault_errors.with_label_values(&[e.kind()]).inc();
    }

    /// The agent token's TTL.
    pub fn set_token_ttl(&self, ttl: Option<Duration>) {
        self.token_ttl.set(ttl.map_or(-1.0, |d| d.as_secs_f64()));
    }

    /// Readiness latch: set once the socket is bound and the agent has logged in.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding to memory");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

fn respond(metrics: &Metrics, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/metrics" => (200, metrics.render()),
        "/live" => (200, "live\n".to_owned()),
        "/ready" if metrics.ready.load(Ordering::Acquire) => (200, "ready\n".to_owned()),
        "/ready" => (503, "not ready\n".to_owned()),
        _ => (404, "not found\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

/// Serves the metrics endpoint until the process exits.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "Metrics listener accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let r = respond(&metrics, &req);
                async move { Ok::<_, Infallible>(r) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await
            {
                debug!(error = %e, "Metrics connection ended with an error.");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let m = Metrics::register(&Registry::new());
        m.issued("db");
        m.denied("db");
        m.revoked("db");
        m.set_token_ttl(None);
        let text = m.render();
        for name in [
            "keyward_agent_credentials_issued_total{profile=\"db\"} 1",
            "keyward_agent_denied_total{profile=\"db\"} 1",
            "keyward_agent_leases_active 0",
            "keyward_agent_token_ttl_seconds -1",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
