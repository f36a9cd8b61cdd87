//! `keyward serve`: the long-running scanner.
//!
//! One process, on a tokio runtime:
//!
//! - [`watchers`] learn that a source has something new (git refs changed, the Docker engine
//!   built or pulled an image, a file landed in a drop directory, a registry tag moved, a
//!   post-receive hook called) and queue a job for that source;
//! - [`worker`]s claim jobs from the store's queue (shared by every daemon on one PostgreSQL),
//!   run the scan on a blocking thread ([`job`]) and record its findings;
//! - [`api`] serves findings, scans, triage, health and [`metrics`] over HTTP, on loopback and
//!   on a local Unix socket.
//!
//! A job always means "bring this source up to date": every scan is incremental (git state, and
//! image ids, layers and archives already scanned are kept in the store), so queueing a source
//! twice costs nothing and a job lost in a crash is simply run again.

pub mod api;
pub mod config;
pub mod job;
pub mod metrics;
pub mod watchers;
pub mod worker;

use self::config::ServeConfig;
use self::metrics::Metrics;
use crate::error::UsageError;
use crate::prepare;
use crate::store::{self, Store, Unix};
use anyhow::{Context, Result};
use keyward_detectors::RuleSet;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, watch};

/// The configuration and the rules compiled from it; replaced as a whole on reload.
pub struct Current {
    /// The configuration.
    pub config: ServeConfig,
    /// The compiled rule set.
    pub rules: Arc<RuleSet>,
}

impl Current {
    /// Reads the config file and compiles its rules.
    ///
    /// # Errors
    /// A bad config or rule file, as a [`UsageError`] naming file, line and key.
    pub fn load(path: &Path) -> Result<Current> {
        let config = ServeConfig::load(path).map_err(|e| UsageError(format!("{e:#}")))?;
        let rules = prepare::load_rules(&[], &config.scan, &[], &[])?;
        Ok(Current {
            config,
            rules: Arc::new(rules),
        })
    }
}

/// What every task of the daemon shares.
pub struct Daemon {
    /// The findings store and job queue.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Metrics,
    /// This daemon's name in the job queue (`host:pid:random`).
    pub owner: String,
    current: RwLock<Arc<Current>>,
    /// Wakes idle workers when this daemon queues a job.
    pub wake: Notify,
    ready: AtomicBool,
    /// Set when SIGTERM arrives: workers stop claiming.
    pub stopping: watch::Sender<bool>,
    /// When a hook notified each source (for the notify→start histogram).
    notified: Mutex<HashMap<String, Instant>>,
    /// The API's bearer token (non-loopback listeners).
    pub token: RwLock<Option<keyward_detectors::Secret<Vec<u8>>>>,
}

impl Daemon {
    /// The configuration and rules in force.
    pub fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Ready: the store is open and the sources are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Queues a scan of `source` and wakes a worker. Returns the job id, or `None` when one is
    /// queued already.
    ///
    /// # Errors
    /// The store failed.
    pub fn enqueue(&self, source: &str, kind: &str, why: &str) -> Result<Option<store::JobId>> {
        let id = self.store_op(|s| s.enqueue(source, kind, why, now()))?;
        if id.is_some() {
            tracing::debug!(source, reason = why, "Scan queued.");
        }
        self.wake.notify_waiters();
        self.wake.notify_one();
        Ok(id)
    }

    /// [`Daemon::enqueue`] from async code (the store may block).
    pub async fn enqueue_async(self: &Arc<Self>, source: &str, kind: &str, why: &str) {
        let (d, source, kind, why) = (
            self.clone(),
            source.to_owned(),
            kind.to_owned(),
            why.to_owned(),
        );
        let r = tokio::task::spawn_blocking(move || d.enqueue(&source, &kind, &why))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("queue task failed: {e}")));
        if let Err(e) = r {
            tracing::warn!(error = %format!("{e:#}"), "Could not queue a scan.");
        }
    }

    /// Notes that a hook announced new content in `source` (for the latency histogram).
    pub fn note_notified(&self, source: &str) {
        self.notified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(source.to_owned(), Instant::now());
    }

    /// Takes the time of the last notification for `source`.
    pub fn take_notified(&self, source: &str) -> Option<Instant> {
        self.notified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(source)
    }

    /// Runs a store operation, keeping `keyward_store_up` current.
    ///
    /// # Errors
    /// The operation's.
    pub fn store_op<T>(&self, f: impl FnOnce(&dyn Store) -> Result<T>) -> Result<T> {
        let r = f(self.store.as_ref());
        self.metrics.store_up.set(i64::from(r.is_ok()));
        r
    }

    /// Reloads config and rules (SIGHUP). A bad file keeps what is in force and says why.
    /// Listeners and the store are read at start only; a change there is logged, not applied.
    pub fn reload(&self) -> Result<Arc<Current>> {
        let path = self.current().config.path.clone();
        match Current::load(&path) {
            Ok(new) => {
                let old = self.current();
                if new.config.store != old.config.store
                    || new.config.api.listen != old.config.api.listen
                    || new.config.api.socket != old.config.api.socket
                {
                    tracing::warn!(
                        "The store and API listeners changed in the config; they apply at the next restart."
                    );
                }
                if let Err(e) = self.load_token(&new.config) {
                    tracing::warn!(error = %format!("{e:#}"), "API token not reloaded; keeping the old one.");
                }
                let new = Arc::new(new);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = new.clone();
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(
                    sources = new.config.sources.len(),
                    rules = new.rules.len(),
                    "Configuration reloaded."
                );
                Ok(new)
            }
            Err(e) => {
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                tracing::error!(
                    error = %format!("{e:#}"),
                    "Configuration reload failed; keeping the configuration in force."
                );
                Err(e)
            }
        }
    }

    fn load_token(&self, config: &ServeConfig) -> Result<()> {
        let token = match &config.api.token_file {
            Some(p) => {
                let mut text = fs_err::read(p).context("reading the API token file")?;
                while text.last().is_some_and(u8::is_ascii_whitespace) {
                    text.pop();
                }
                anyhow::ensure!(
                    text.len() >= 16,
                    "{}: the API token must be at least 16 bytes",
                    p.display()
                );
                Some(keyward_detectors::Secret::new(text))
            }
            None => None,
        };
        *self
            .token
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token;
        Ok(())
    }

    /// Refreshes the gauges that come from the store (open findings, queue depth).
    pub fn refresh_gauges(&self) {
        if let Ok(counts) = self.store_op(|s| s.open_counts()) {
            self.metrics.set_open(&counts);
        }
        if let Ok(depth) = self.store_op(|s| s.queue_depth()) {
            self.metrics
                .queue_depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// Publishes the configured sources and their last successes (from the store, so a restart
    /// or another daemon's scans count).
    pub fn publish_sources(&self) {
        let current = self.current();
        let sources: Vec<_> = current
            .config
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.kind()))
            .collect();
        let store = self.store.clone();
        self.metrics.set_sources(&sources, &|name| {
            store
                .get_state(&last_success_key(name))
                .ok()
                .flatten()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
        });
    }
}

/// The store key holding a source's last successful scan time.
pub fn last_success_key(source: &str) -> String {
    format!("last-success:{source}")
}

/// Seconds since the epoch.
pub fn now() -> Unix {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `keyward serve --check`: reads the config and compiles the rules; binds nothing.
///
/// # Errors
/// What is wrong with the config or rules.
pub fn check(path: &Path) -> Result<()> {
    let c = Current::load(path)?;
    tracing::info!(
        sources = c.config.sources.len(),
        rules = c.rules.len(),
        "Configuration is valid."
    );
    Ok(())
}

/// `keyward serve --config FILE`: runs until SIGTERM or SIGINT.
///
/// # Errors
/// A bad config ([`UsageError`]), a store that cannot be opened, a listener that cannot bind.
pub fn run(path: &Path) -> Result<()> {
    let current = Current::load(path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("keyward-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(current));
    // A scan still running on a blocking thread was requeued already; do not wait for it.
    runtime.shutdown_background();
    result
}

async fn serve(current: Current) -> Result<()> {
    let started = Instant::now();
    let config = &current.config;
    fs_err::create_dir_all(&config.state_dir).context("creating the state directory")?;
    let spec = config.store.as_str().to_owned();
    let store = tokio::task::spawn_blocking(move || store::open(&spec))
        .await
        .context("opening the store")??;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry);
    metrics.store_up.set(1);
    let (stopping, _) = watch::channel(false);
    let daemon = Arc::new(Daemon {
        store,
        metrics,
        owner: owner_id(),
        current: RwLock::new(Arc::new(current)),
        wake: Notify::new(),
        ready: AtomicBool::new(false),
        stopping,
        notified: Mutex::new(HashMap::new()),
        token: RwLock::new(None),
    });
    daemon
        .load_token(&daemon.current().config)
        .map_err(|e| UsageError(format!("{e:#}")))?;

    let listeners = api::bind(&daemon).await?;
    let api_tasks = api::spawn(&daemon, listeners);
    let mut watchers = watchers::Watchers::default();
    watchers.sync(&daemon);
    let workers = worker::spawn_all(&daemon);
    let gauges = {
        let d = daemon.clone();
        tokio::spawn(async move {
            loop {
                let d2 = d.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    d2.refresh_gauges();
                    d2.publish_sources();
                })
                .await;
                // Jobs and triage refresh these as they happen; this catches other daemons'
                // work (fleet mode) and status changes made elsewhere.
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    };
    // Everything the daemon knew to scan is queued again: a job that was running when the
    // daemon last stopped is taken over when its lease runs out, anything else starts now.
    for s in &daemon.current().config.sources {
        daemon.enqueue_async(&s.name, s.job_kind(), "start").await;
    }
    daemon.ready.store(true, Ordering::Release);
    tracing::info!(
        owner = %daemon.owner,
        store = daemon.store.backend(),
        sources = daemon.current().config.sources.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Daemon ready."
    );

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let d = daemon.clone();
                if tokio::task::spawn_blocking(move || d.reload()).await.is_ok_and(|r| r.is_ok()) {
                    watchers.sync(&daemon);
                    for s in &daemon.current().config.sources {
                        daemon.enqueue_async(&s.name, s.job_kind(), "reload").await;
                    }
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    tracing::info!("Stopping: no new scans; waiting for running ones.");
    daemon.ready.store(false, Ordering::Release);
    let _ = daemon.stopping.send(true);
    watchers.stop_all();
    gauges.abort();
    let timeout = daemon.current().config.shutdown_timeout;
    let drained = tokio::time::timeout(timeout, futures_join(workers)).await;
    if drained.is_err() {
        let d = daemon.clone();
        let requeued = tokio::task::spawn_blocking(move || worker::requeue_running(&d))
            .await
            .unwrap_or(0);
        tracing::warn!(
            requeued,
            timeout_s = timeout.as_secs_f64(),
            "Running scans did not finish in time; they were put back in the queue."
        );
    }
    api_tasks.shutdown().await;
    tracing::info!("Stopped.");
    Ok(())
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// `host:pid:random`: unique per process, readable in the API's job list.
fn owner_id() -> String {
    let host = fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned());
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    format!("{host}:{}:{}", std::process::id(), hex::encode(r))
}
