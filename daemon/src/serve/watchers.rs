//! One task per configured source that queues a scan when the source has something new:
//!
//! - git: the refs changed (inotify on the git directory's refs, plus a poll of a hash over every
//!   ref; the post-receive hook comes in through the API);
//! - Docker: the engine's image events (`pull`, `tag`, `load`, `import`), plus a slow poll in
//!   case an event was missed while the engine was away;
//! - drop directories: the listing (names, sizes, times) changed;
//! - registries: every poll (the job compares tags and digests).
//!
//! Watchers only queue; the job finds out what is new.

use super::Daemon;
use super::config::{SourceConfig, SourceSpec};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

/// The running watchers, by source name.
#[derive(Default)]
pub struct Watchers {
    running: HashMap<String, (SourceConfig, JoinHandle<()>)>,
}

impl Watchers {
    /// Starts watchers for new or changed sources and stops those of removed ones.
    pub fn sync(&mut self, daemon: &Arc<Daemon>) {
        let sources = daemon.current().config.sources.clone();
        self.running.retain(|name, (config, handle)| {
            let keep = sources.iter().any(|s| s == config);
            if !keep {
                handle.abort();
                tracing::info!(source = %name, "Stopped watching.");
            }
            keep
        });
        for s in sources {
            if self.running.contains_key(&s.name) {
                continue;
            }
            let handle = tokio::spawn(watch(daemon.clone(), s.clone()));
            self.running.insert(s.name.clone(), (s, handle));
        }
    }

    /// Stops every watcher.
    pub fn stop_all(&mut self) {
        for (_, (_, h)) in self.running.drain() {
            h.abort();
        }
    }
}

async fn watch(daemon: Arc<Daemon>, source: SourceConfig) {
    match &source.spec {
        SourceSpec::Git { path, notify } => watch_git(daemon, &source, path.clone(), *notify).await,
        SourceSpec::Docker { socket } => watch_docker(daemon, &source, socket.clone()).await,
        SourceSpec::Drop { path } => {
            poll_changes(daemon, &source, path.clone(), listing_hash).await;
        }
        SourceSpec::Registry { .. } => loop {
            tokio::time::sleep(source.poll_interval).await;
            queue(&daemon, &source, "poll").await;
        },
    }
}

async fn queue(daemon: &Arc<Daemon>, source: &SourceConfig, why: &str) {
    daemon
        .enqueue_async(&source.name, source.job_kind(), why)
        .await;
}

/// Polls `probe(path)` every poll interval and queues a scan when its value changes.
async fn poll_changes(
    daemon: Arc<Daemon>,
    source: &SourceConfig,
    path: PathBuf,
    probe: fn(&Path) -> u64,
) {
    let first = path.clone();
    let mut last = tokio::task::spawn_blocking(move || probe(&first))
        .await
        .unwrap_or(0);
    loop {
        tokio::time::sleep(source.poll_interval).await;
        let p = path.clone();
        let now = tokio::task::spawn_blocking(move || probe(&p))
            .await
            .unwrap_or(0);
        if now != last {
            last = now;
            queue(&daemon, source, "changed").await;
        }
    }
}

/// A hash over every ref of the repository (name and target) and HEAD; 0 when it cannot be
/// read (the job then reports why).
pub fn refs_hash(path: &Path) -> u64 {
    let Ok(repo) = crate::sources::git::open(path, None) else {
        return 0;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            r.name_bytes().hash(&mut h);
            r.target().map(|t| t.as_bytes().to_vec()).hash(&mut h);
            r.symbolic_target_bytes().map(<[u8]>::to_vec).hash(&mut h);
        }
    }
    if let Ok(head) = repo.head() {
        head.target().map(|t| t.as_bytes().to_vec()).hash(&mut h);
    }
    h.finish()
}

/// A hash over a directory's entries: name, size and modification time.
pub fn listing_hash(path: &Path) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut entries: Vec<(std::ffi::OsString, u64, SystemTime)> = rd
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let stamp = if m.is_dir() {
                std::fs::metadata(e.path().join("index.json")).ok()?
            } else {
                m
            };
            Some((
                e.file_name(),
                stamp.len(),
                stamp.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ))
        })
        .collect();
    entries.sort();
    entries.hash(&mut h);
    h.finish()
}

async fn watch_git(daemon: Arc<Daemon>, source: &SourceConfig, path: PathBuf, use_notify: bool) {
    // File notification: any change under refs/, packed-refs or HEAD queues a scan at once
    // (debounced: a push writes several files).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let _watcher = if use_notify {
        match notify_refs(&path, tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    source = %source.name,
                    error = %format!("{e:#}"),
                    "File notification unavailable; polling only."
                );
                None
            }
        }
    } else {
        None
    };
    let first = path.clone();
    let mut last = tokio::task::spawn_blocking(move || refs_hash(&first))
        .await
        .unwrap_or(0);
    loop {
        let notified = tokio::select! {
            () = tokio::time::sleep(source.poll_interval) => false,
            Some(()) = rx.recv() => true,
        };
        if notified {
            tokio::time::sleep(Duration::from_millis(50)).await;
            while rx.try_recv().is_ok() {}
        }
        let p = path.clone();
        let now = tokio::task::spawn_blocking(move || refs_hash(&p))
            .await
            .unwrap_or(0);
        if now != last {
            last = now;
            queue(&daemon, source, if notified { "notify" } else { "poll" }).await;
        }
    }
}

/// Watches the refs of the repository at `path` (a bare repository or a clone's `.git`).
fn notify_refs(
    path: &Path,
    tx: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let repo = crate::sources::git::open(path, None)?;
    let git_dir = repo.path().to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(&git_dir.join("refs"), notify::RecursiveMode::Recursive)?;
    // packed-refs and HEAD are replaced by rename; watch the directory itself, not recursively.
    watcher.watch(&git_dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

async fn watch_docker(daemon: Arc<Daemon>, source: &SourceConfig, socket: PathBuf) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let stop = daemon.stopping.subscribe();
    let follower = tokio::spawn(crate::watch::docker_events::follow(socket, tx, stop));
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(e) => {
                    tracing::debug!(action = %e.action, image = %e.image, "Docker image event.");
                    // One scan for a burst (`docker load` of many images, a build's tags): the
                    // job looks at every image anyway.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    while let Ok(e) = rx.try_recv() {
                        tracing::debug!(action = %e.action, image = %e.image, "Docker image event.");
                    }
                    queue(&daemon, source, "docker-event").await;
                }
                None => break,
            },
            () = tokio::time::sleep(source.poll_interval) => queue(&daemon, source, "poll").await,
        }
    }
    follower.abort();
}
