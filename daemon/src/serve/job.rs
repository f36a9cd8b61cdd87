//! One job: bring one source up to date, on a blocking thread. Scans only what is new (git
//! state, image ids, drop-directory files and registry digests already scanned are kept in the
//! store), records the findings, and only then records the new scan state, so a crash between
//! the two scans again rather than loses a finding.

use super::config::{SourceConfig, SourceSpec};
use super::{Current, Daemon, now};
use crate::finding::{Finding, Location};
use crate::group::SecretFinding;
use crate::prepare;
use crate::scan::Scan;
use crate::sources::archive::ArchiveLimits;
use crate::sources::git::{self, GitOptions};
use crate::sources::image::layer::LayerOptions;
use crate::sources::image::registry::RegistryOptions;
use crate::sources::image::{ImageOptions, ImageScan, LayerCache};
use crate::store::{Detection, StoredFinding, StoredLocation};
use crate::suppress::Suppressor;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

/// What a job did.
#[derive(Debug, Default, Clone)]
pub struct JobReport {
    /// Bytes scanned.
    pub bytes: u64,
    /// Files and blobs scanned.
    pub objects: u64,
    /// Image layers scanned.
    pub layers: u64,
    /// Findings seen (after suppression; a known secret counts again).
    pub findings: u64,
    /// Findings new to the store.
    pub new_findings: u64,
}

/// Runs the job for `source`.
///
/// # Errors
/// The source could not be read (the job is retried with back-off) or the store failed.
pub fn run(daemon: &Daemon, current: &Current, source: &SourceConfig) -> Result<JobReport> {
    let scan = new_scan(current)?;
    let mut report = JobReport::default();
    match &source.spec {
        SourceSpec::Git { path, .. } => git_job(daemon, current, source, path, &scan, &mut report)?,
        SourceSpec::Docker { socket } => {
            docker_job(daemon, current, source, socket, &scan, &mut report)?;
        }
        SourceSpec::Drop { path } => drop_job(daemon, current, source, path, &scan, &mut report)?,
        SourceSpec::Registry {
            registry,
            repository,
            insecure,
        } => registry_job(
            daemon,
            current,
            source,
            registry,
            repository,
            *insecure,
            &scan,
            &mut report,
        )?,
    }
    report.bytes = scan.stats.bytes.load(Relaxed);
    report.objects = scan.stats.files.load(Relaxed);
    report.layers = scan.stats.layers.load(Relaxed);
    Ok(report)
}

fn new_scan(current: &Current) -> Result<Scan> {
    let config = &current.config.scan;
    let scanner = prepare::scanner(current.rules.clone(), config, false, false);
    let suppressor = Suppressor::new(config, &[], None)?;
    Ok(Scan::new(scanner, suppressor))
}

/// Test-only fault injection: milliseconds to wait after a scan and before its findings are
/// recorded, so a test can kill the daemon at the worst moment. Unset in production.
pub const HOLD_BEFORE_RECORD_ENV: &str = "KEYWARD_TEST_HOLD_BEFORE_RECORD_MS";

/// Stores what `scan` found in `source`, with metrics for new findings.
fn record(
    daemon: &Daemon,
    source: &SourceConfig,
    scan: &Scan,
    report: &mut JobReport,
) -> Result<()> {
    record_findings(daemon, source, scan.take_findings(), report)
}

/// [`record`] of findings already taken from their scan.
///
/// The findings are grouped by secret first, so that every detection of a secret carries the
/// secret's confidence (its most confident place, lowered when it also stands in
/// documentation), as the scan reports show it; every place is still recorded as a location.
fn record_findings(
    daemon: &Daemon,
    source: &SourceConfig,
    findings: Vec<Finding>,
    report: &mut JobReport,
) -> Result<()> {
    report.findings += findings.len() as u64;
    if findings.is_empty() {
        return Ok(());
    }
    if let Some(ms) = std::env::var(HOLD_BEFORE_RECORD_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::info!(
            ms,
            "Holding before recording findings (test fault injection)."
        );
        std::thread::sleep(Duration::from_millis(ms));
    }
    let repository = match &source.spec {
        SourceSpec::Git { path, .. } => Some(path.display().to_string()),
        _ => None,
    };
    let secrets = crate::group::group(findings);
    let detections: Vec<Detection> = secrets
        .iter()
        .flat_map(|s| {
            s.locations
                .iter()
                .map(|l| detection(s, l, &source.name, repository.as_deref()))
        })
        .collect();
    let outcome = daemon
        .store_op(|s| s.record(&detections, now()))
        .context("recording findings in the store")?;
    report.new_findings += outcome.new_findings.len() as u64;
    for n in &outcome.new_findings {
        daemon
            .metrics
            .findings_new
            .with_label_values(&[&n.severity, &n.source_kind, &n.confidence])
            .inc();
        if let Some(t) = n.time_to_detect {
            daemon
                .metrics
                .time_to_detect
                .with_label_values(&[&n.source_kind])
                .observe(t.max(0.0));
        }
        tracing::warn!(
            source = %source.name,
            rule = %n.rule,
            severity = %n.severity,
            confidence = %n.confidence,
            fingerprint = %n.fingerprint,
            "New finding."
        );
    }
    Ok(())
}

/// The stored form of a secret at one of its places `l`: everything but the secret, with the
/// secret's confidence and reasons (over all its places, not this place's).
pub fn detection(
    secret: &SecretFinding,
    l: &Location,
    source: &str,
    repository: Option<&str>,
) -> Detection {
    let f = &secret.first;
    Detection {
        finding: StoredFinding {
            fingerprint: f.fingerprint.as_str().to_owned(),
            rule: f.rule.clone(),
            rule_name: f.rule_name.clone(),
            severity: f.severity.as_str().to_owned(),
            redacted: f.redacted.clone(),
            validation: f.validation.to_owned(),
            source_kind: f.location.source.as_str().to_owned(),
            confidence: secret.confidence().as_str().to_owned(),
            reasons: secret
                .assessment
                .reasons
                .names()
                .map(str::to_owned)
                .collect(),
        },
        location: StoredLocation {
            source: source.to_owned(),
            source_kind: l.source.as_str().to_owned(),
            repository: repository.map(str::to_owned),
            commit: l.commit.clone(),
            author: l.author.clone(),
            path: l.path.clone(),
            line: l.line,
            column: l.column,
            image: l.image.clone(),
            layer: l.layer.clone(),
            layer_index: l.layer_index,
            deleted: l.deleted,
            content_created: l.time(),
        },
    }
}

fn git_job(
    daemon: &Daemon,
    current: &Current,
    source: &SourceConfig,
    path: &Path,
    scan: &Scan,
    report: &mut JobReport,
) -> Result<()> {
    let config = &current.config;
    let key = format!("git:{}", source.name);
    let dir = config.state_dir.join("git");
    fs_err::create_dir_all(&dir)?;
    // The store holds the state (shared by a fleet); the scan reads and writes a file.
    let state_path = dir.join(format!("{}.state", source.name));
    match daemon.store_op(|s| s.get_state(&key))? {
        Some(bytes) => fs_err::write(&state_path, bytes)?,
        None => {
            let _ = fs_err::remove_file(&state_path);
        }
    }
    let settings = git::state::scan_settings(
        &current.rules,
        config.scan.decode_base64.unwrap_or(true),
        config.scan.keep_failed_validation,
        false,
        config.max_file_size,
    );
    let opts = GitOptions {
        repo: path.to_path_buf(),
        include_unreachable: false,
        since: None,
        range: None,
        state: Some(state_path.clone()),
        scan_binary: false,
        max_file_size: config.max_file_size,
        threads: config.threads,
        settings,
        quarantine: None,
    };
    let summary = git::scan(scan, &opts)?;
    record(daemon, source, scan, report)?;
    let bytes = fs_err::read(&state_path)?;
    daemon.store_op(|s| s.put_state(&key, &bytes, now()))?;
    tracing::debug!(
        source = %source.name,
        commits = summary.commits,
        blobs = summary.blobs_scanned,
        incremental = summary.incremental,
        "Git scan done."
    );
    Ok(())
}

fn image_options(current: &Current, insecure: bool, docker_socket: Option<&Path>) -> ImageOptions {
    let config = &current.config;
    ImageOptions {
        layer: LayerOptions {
            archives: ArchiveLimits::default(),
            max_file_size: config.max_file_size,
            scan_binary: false,
            threads: config.threads,
        },
        platforms: Vec::new(),
        registry: RegistryOptions {
            insecure,
            credentials: None,
            authfile: None,
        },
        docker_host: docker_socket.map(|p| format!("unix://{}", p.display())),
    }
}

/// Scans one image target; an integrity failure (digest mismatch) fails the job.
///
/// NOTE: the layer cache lives for one target (platforms of an index share layers), not for the
/// daemon's life: a layer scan holds the layer's file list, and a long-lived cache only grows.
/// An image already scanned is skipped by id or digest before it gets here.
fn scan_target(scan: &Scan, opts: &ImageOptions, target: &str) -> Result<()> {
    let layers = LayerCache::default();
    let ctx = ImageScan::new(scan, opts, &layers);
    ctx.target(target).map_err(|e| {
        // Most errors name the target already; say it once.
        if format!("{e:#}").contains(target) {
            e
        } else {
            e.context(format!("scanning {target}"))
        }
    })?;
    let integrity = ctx.integrity_errors();
    if !integrity.is_empty() {
        bail!("{target}: {}", integrity.join("; "));
    }
    Ok(())
}

/// Scans `target` and records what it found, even when the scan then fails (what was read is
/// real). The findings' `image` says `name` where the scan says `target`: an image read by id
/// or digest is named by its tag.
#[allow(clippy::too_many_arguments)]
fn scan_and_record(
    daemon: &Daemon,
    source: &SourceConfig,
    scan: &Scan,
    report: &mut JobReport,
    opts: &ImageOptions,
    target: &str,
    name: &str,
) -> Result<()> {
    let scanned = scan_target(scan, opts, target);
    let mut findings = scan.take_findings();
    if name != target {
        for f in &mut findings {
            if let Some(image) = &mut f.location.image
                && let Some(rest) = image.strip_prefix(target)
            {
                *image = format!("{name}{rest}");
            }
        }
    }
    record_findings(daemon, source, findings, report)?;
    scanned
}

/// An untagged image younger than this is left for a later job: the legacy builder commits an
/// image and tags it a moment later, and a job in between would name it by its id for good.
const UNTAGGED_GRACE: Duration = Duration::from_secs(10);

fn docker_job(
    daemon: &Daemon,
    current: &Current,
    source: &SourceConfig,
    socket: &Path,
    scan: &Scan,
    report: &mut JobReport,
) -> Result<()> {
    let handle = tokio::runtime::Handle::current();
    let mut images = handle.block_on(crate::watch::docker_events::list_images(socket))?;
    images.sort_by_key(|i| i.created);
    let opts = image_options(current, false, Some(socket));
    let mut failures = Vec::new();
    let mut deferred = false;
    for image in images {
        let key = image.id.clone();
        if daemon.store_op(|s| s.is_scanned("docker-image", &key))? {
            continue;
        }
        if image.repo_tags.is_empty() && now() - image.created < UNTAGGED_GRACE.as_secs() as i64 {
            deferred = true;
            continue;
        }
        // NOTE: read by id, named by tag. A tag may move to another image between the listing
        // and the read (a rebuild under the same tag): read by tag, the other image would be
        // scanned and this id marked scanned unread.
        let target = format!("docker-daemon:{}", image.id);
        let name = image
            .repo_tags
            .first()
            .map_or_else(|| target.clone(), |t| format!("docker-daemon:{t}"));
        match scan_and_record(daemon, source, scan, report, &opts, &target, &name) {
            Ok(()) => daemon.store_op(|s| s.mark_scanned("docker-image", &key, now()))?,
            Err(e) => failures.push((key, format!("{e:#}"))),
        }
    }
    if deferred {
        requeue_later(daemon, source, "untagged");
    }
    if !failures.is_empty() {
        // An image removed since the listing (`docker rmi` right after a build) is no failure.
        let still: std::collections::HashSet<String> = handle
            .block_on(crate::watch::docker_events::list_images(socket))?
            .into_iter()
            .map(|i| i.id)
            .collect();
        failures.retain(|(id, _)| still.contains(id));
    }
    if !failures.is_empty() {
        let msgs: Vec<String> = failures.into_iter().map(|(_, e)| e).collect();
        bail!("{}", msgs.join("\n"));
    }
    Ok(())
}

/// Queues `source` again, to run in a second or two (not at once: the job would find the same
/// thing not ready and queue itself again, in a loop).
fn requeue_later(daemon: &Daemon, source: &SourceConfig, why: &str) {
    // NOTE: the store's clock is whole seconds: a job due at `now + 1` runs 0 to 1 s from now,
    // when a worker next looks for jobs.
    if let Err(e) = daemon.store_op(|s| s.enqueue(&source.name, source.job_kind(), why, now() + 1))
    {
        tracing::warn!(source = %source.name, error = %format!("{e:#}"), "Could not queue a scan.");
    }
}

/// A file in a drop directory is scanned once it has not changed for this long (it may still be
/// being written).
const SETTLE: Duration = Duration::from_secs(1);

fn drop_job(
    daemon: &Daemon,
    current: &Current,
    source: &SourceConfig,
    dir: &Path,
    scan: &Scan,
    report: &mut JobReport,
) -> Result<()> {
    let opts = image_options(current, false, None);
    let mut entries: Vec<_> = fs_err::read_dir(dir)?
        .filter_map(std::result::Result::ok)
        // NOTE: hidden names are skipped: copies in progress (`rsync`'s `.name.XXXXXX`, an
        // editor's swap file) that are renamed when complete.
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut unsettled = false;
    let mut failures = Vec::new();
    for path in entries {
        // Gone since the listing: nothing to scan.
        let Ok(meta) = fs_err::metadata(&path) else {
            continue;
        };
        let (target, stamp_path) = if meta.is_file() {
            (format!("docker-archive:{}", path.display()), path.clone())
        } else if path.join("oci-layout").is_file() && path.join("index.json").is_file() {
            (format!("oci:{}", path.display()), path.join("index.json"))
        } else {
            continue;
        };
        let Ok(stamp) = fs_err::metadata(&stamp_path) else {
            continue;
        };
        let modified = stamp.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if modified.elapsed().unwrap_or_default() < SETTLE {
            unsettled = true;
            continue;
        }
        let key = format!(
            "{}:{}:{}",
            path.display(),
            stamp.len(),
            modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        if daemon.store_op(|s| s.is_scanned("drop", &key))? {
            continue;
        }
        // What was found is kept when the scan fails; the file is tried again with the job.
        match scan_and_record(daemon, source, scan, report, &opts, &target, &target) {
            Ok(()) => daemon.store_op(|s| s.mark_scanned("drop", &key, now()))?,
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if unsettled {
        // Come back once the file has settled.
        requeue_later(daemon, source, "settling");
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn registry_job(
    daemon: &Daemon,
    current: &Current,
    source: &SourceConfig,
    registry: &str,
    repository: &str,
    insecure: bool,
    scan: &Scan,
    report: &mut JobReport,
) -> Result<()> {
    let key = format!("registry:{}", source.name);
    let before: BTreeMap<String, String> = daemon
        .store_op(|s| s.get_state(&key))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let now_tags = crate::watch::registry_poll::poll(registry, repository, insecure, None)?;
    let changed = crate::watch::registry_poll::changed(&before, &now_tags);
    let opts = image_options(current, insecure, None);
    let mut done = before.clone();
    done.retain(|t, _| now_tags.contains_key(t));
    let mut failures = Vec::new();
    for (tag, digest) in changed {
        let scanned_key = format!("{registry}/{repository}@{digest}");
        if !daemon.store_op(|s| s.is_scanned("registry-manifest", &scanned_key))? {
            // NOTE: read by digest, named by tag: the tag may move between the poll and the
            // read, and the digest is what is marked scanned.
            let target = format!("docker://{scanned_key}");
            let name = format!("docker://{registry}/{repository}:{tag}");
            if let Err(e) = scan_and_record(daemon, source, scan, report, &opts, &target, &name) {
                // The other tags go on; this one is tried again with the job.
                failures.push(format!("{e:#}"));
                continue;
            }
            daemon.store_op(|s| s.mark_scanned("registry-manifest", &scanned_key, now()))?;
        }
        done.insert(tag, digest);
        let bytes = serde_json::to_vec(&done).expect("a map of strings serializes");
        daemon.store_op(|s| s.put_state(&key, &bytes, now()))?;
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}
