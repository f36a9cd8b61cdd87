//! Workers: claim a job from the queue, keep its lease alive while the scan runs on a blocking
//! thread, record the outcome, retry failures with back-off.
//!
//! Concurrency is bounded by the number of workers (`[scan] workers`); a huge history holds one
//! worker while the others go on with the other sources. The store never hands out a job for a
//! source that another worker (of any daemon) is scanning under a live lease.

use super::job::{self, JobReport};
use super::{Daemon, now};
use crate::store::{Job, JobId, JobOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Jobs this process is running (for requeueing at shutdown).
fn running() -> &'static Mutex<HashMap<JobId, String>> {
    static RUNNING: OnceLock<Mutex<HashMap<JobId, String>>> = OnceLock::new();
    RUNNING.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Starts `[scan] workers` workers.
pub fn spawn_all(daemon: &Arc<Daemon>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..daemon.current().config.workers)
        .map(|i| tokio::spawn(work(daemon.clone(), i)))
        .collect()
}

/// Puts the jobs still running back in the queue (shutdown cut them short). Returns how many.
pub fn requeue_running(daemon: &Daemon) -> usize {
    let jobs: Vec<JobId> = running()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .keys()
        .copied()
        .collect();
    for id in &jobs {
        let outcome = JobOutcome {
            error: Some("interrupted: the daemon stopped; queued again".to_owned()),
            retry_at: Some(now()),
            ..JobOutcome::default()
        };
        let _ = daemon.store_op(|s| s.finish(*id, &daemon.owner, now(), &outcome));
    }
    jobs.len()
}

async fn work(daemon: Arc<Daemon>, index: usize) {
    let mut stopping = daemon.stopping.subscribe();
    loop {
        if *stopping.borrow() {
            return;
        }
        let d = daemon.clone();
        let lease = lease_secs(&daemon);
        let claimed =
            tokio::task::spawn_blocking(move || d.store_op(|s| s.claim(&d.owner, now(), lease)))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("claim task failed: {e}")));
        match claimed {
            Ok(Some(job)) => run(&daemon, job).await,
            Ok(None) => {
                let idle = daemon.current().config.queue.claim_interval;
                tokio::select! {
                    () = daemon.wake.notified() => {}
                    () = tokio::time::sleep(idle) => {}
                    _ = stopping.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = index, error = %format!("{e:#}"), "Could not claim a job; retrying.");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }
}

fn lease_secs(daemon: &Daemon) -> i64 {
    daemon.current().config.queue.lease.as_secs().max(1) as i64
}

async fn run(daemon: &Arc<Daemon>, job: Job) {
    let started = Instant::now();
    let current = daemon.current();
    let Some(source) = current.config.source(&job.source).cloned() else {
        let outcome = JobOutcome {
            error: Some(format!("source {:?} is no longer configured", job.source)),
            ..JobOutcome::default()
        };
        let d = daemon.clone();
        let _ = tokio::task::spawn_blocking(move || {
            d.store_op(|s| s.finish(job.id, &d.owner, now(), &outcome))
        })
        .await;
        return;
    };
    if let Some(t) = daemon.take_notified(&source.name) {
        daemon
            .metrics
            .notify_to_start
            .observe(t.elapsed().as_secs_f64());
    }
    running()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(job.id, source.name.clone());
    tracing::info!(job = job.id.0, source = %source.name, attempt = job.attempts, "Scan started.");

    // The lease is renewed at a third of its length while the scan runs.
    let renewer = {
        let d = daemon.clone();
        let id = job.id;
        let lease = lease_secs(daemon);
        tokio::spawn(async move {
            let every = Duration::from_secs_f64((lease as f64 / 3.0).max(0.5));
            loop {
                tokio::time::sleep(every).await;
                let d2 = d.clone();
                let held = tokio::task::spawn_blocking(move || {
                    d2.store_op(|s| s.renew(id, &d2.owner, now(), lease))
                })
                .await;
                if matches!(held, Ok(Ok(false))) {
                    tracing::warn!(
                        job = id.0,
                        "Lost the job's lease (another daemon took it over)."
                    );
                    return;
                }
            }
        })
    };
    let d = daemon.clone();
    let src = source.clone();
    let cur = current.clone();
    let result = tokio::task::spawn_blocking(move || job::run(&d, &cur, &src))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the scan panicked: {e}")));
    renewer.abort();
    let elapsed = started.elapsed();
    let kind = source.kind().as_str();
    let m = &daemon.metrics;
    m.scan_duration
        .with_label_values(&[kind])
        .observe(elapsed.as_secs_f64());
    let outcome = match &result {
        Ok(report) => {
            let (d, name, r) = (daemon.clone(), source.name.clone(), report.clone());
            let _ = tokio::task::spawn_blocking(move || record_success(&d, &name, kind, &r)).await;
            JobOutcome {
                error: None,
                retry_at: None,
                bytes: report.bytes,
                objects: report.objects,
                findings: report.findings,
            }
        }
        Err(e) => {
            let msg = format!("{e:#}");
            m.scans.with_label_values(&[kind, "failed"]).inc();
            m.scan_errors.with_label_values(&[kind]).inc();
            let q = &current.config.queue;
            let retry_at = (job.attempts < q.max_attempts).then(|| {
                let backoff = q
                    .retry_min
                    .saturating_mul(1 << job.attempts.saturating_sub(1).min(16))
                    .min(q.retry_max);
                now() + backoff.as_secs().max(1) as i64
            });
            tracing::warn!(
                job = job.id.0,
                source = %source.name,
                attempt = job.attempts,
                retry = retry_at.is_some(),
                error = %msg,
                "Scan failed."
            );
            JobOutcome {
                error: Some(msg),
                retry_at,
                ..JobOutcome::default()
            }
        }
    };
    let d = daemon.clone();
    let id = job.id;
    let finished = tokio::task::spawn_blocking(move || {
        d.store_op(|s| s.finish(id, &d.owner, now(), &outcome))
    })
    .await;
    if !matches!(finished, Ok(Ok(true))) {
        tracing::warn!(
            job = id.0,
            "The job's lease was lost before it finished; another daemon runs it again."
        );
    }
    running()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&job.id);
    let d = daemon.clone();
    let _ = tokio::task::spawn_blocking(move || d.refresh_gauges()).await;
}

fn record_success(daemon: &Daemon, source: &str, kind: &'static str, report: &JobReport) {
    let m = &daemon.metrics;
    m.scans.with_label_values(&[kind, "ok"]).inc();
    m.scanned_bytes
        .with_label_values(&[kind])
        .inc_by(report.bytes);
    m.scanned_objects
        .with_label_values(&[kind])
        .inc_by(report.objects);
    m.scanned_layers.inc_by(report.layers);
    let t = now();
    let _ = daemon.store_op(|s| {
        s.put_state(
            &super::last_success_key(source),
            t.to_string().as_bytes(),
            t,
        )
    });
    m.source_last_success
        .with_label_values(&[source])
        .set(t as f64);
    tracing::info!(
        source,
        bytes = report.bytes,
        objects = report.objects,
        findings = report.findings,
        new_findings = report.new_findings,
        "Scan finished."
    );
}
