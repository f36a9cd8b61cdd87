//! `keyward scan git`: every blob of a repository's history, each read and scanned once, with
//! the commit that introduced it.
//!
//! Two passes:
//!
//! 1. [`walk`]: from every ref (branches, tags, remote-tracking refs, notes, `HEAD`, every
//!    stash), collect the commits not seen before, order them oldest first, and walk each one's
//!    tree by object id, skipping trees already visited. Each blob met for the first time is
//!    attributed to the commit being walked. Commit and tag messages are scanned here.
//! 2. [`read`]: read the new blobs on every core (one repository handle per worker) and scan
//!    them; binary, oversized and Git LFS pointer blobs are skipped. The walk hands blobs over
//!    in batches as it finds them, so the two passes overlap.
//!
//! Then [`attribution`] turns the few blobs with matches into findings (commit, author, date,
//! summary, path, `in_head`), and [`state`] records what was scanned for `--state`.
//! Memory holds object ids and a `u32` per id, never object contents beyond the blobs in
//! flight.

pub mod attribution;
pub mod object;
pub mod oid;
pub mod read;
pub mod refs;
pub mod state;
pub mod walk;

use self::attribution::{Attributor, HeadIndex};
use self::oid::{ObjectId, OidMap, OidSet};
use self::read::{ReadCounts, ReadOptions};
use self::state::State;
use self::walk::{BOUNDARY, KNOWN, Origin, Walk};
use crate::error::UsageError;
use crate::scan::Scan;
use crate::suppress::allowed_inline;
use anyhow::{Context, Result, bail};
use keyward_detectors::{Fingerprint, Match};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// What to scan, and how.
#[derive(Debug, Clone)]
pub struct GitOptions {
    /// A working clone or a bare repository.
    pub repo: PathBuf,
    /// Also scan objects that no ref reaches.
    pub include_unreachable: bool,
    /// Only commits not reachable from this revision (`REV..` over every ref).
    pub since: Option<String>,
    /// Only commits in `A..B`.
    pub range: Option<String>,
    /// State file: skip what earlier runs scanned, record what this one did.
    pub state: Option<PathBuf>,
    /// Scan blobs that look binary.
    pub scan_binary: bool,
    /// Largest blob scanned.
    pub max_file_size: u64,
    /// Worker threads.
    pub threads: usize,
    /// Hash of the rules and options (see [`state::settings_hash`]).
    pub settings: u64,
    /// A pre-receive hook's quarantine directory (the push's objects), read as an alternate.
    pub quarantine: Option<PathBuf>,
}

/// A submodule seen in some tree (not followed).
#[derive(Debug, Clone, Serialize)]
pub struct Submodule {
    /// Its path.
    pub path: String,
    /// The commit the superproject pins (the last one seen).
    pub commit: String,
}

/// What a git scan did; `--stats-json` writes it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GitSummary {
    /// The repository's git directory.
    pub repository: String,
    /// A shallow clone: history before the shallow boundary is not there.
    pub shallow: bool,
    /// A partial clone: some blobs may be missing (counted in `missing_blobs`).
    pub partial_clone: bool,
    /// A state file was used (only objects new since it were walked).
    pub incremental: bool,
    /// Refs (and stash entries) the walk started from.
    pub refs: u64,
    /// Commits read.
    pub commits: u64,
    /// Commits that no ref reaches (`--include-unreachable`).
    pub unreachable_commits: u64,
    /// Trees read.
    pub trees: u64,
    /// Commit and tag messages scanned.
    pub messages: u64,
    /// New unique blobs found by the walk.
    pub blobs: u64,
    /// Blobs read and scanned.
    pub blobs_scanned: u64,
    /// Bytes of the blobs scanned.
    pub blob_bytes: u64,
    /// Bytes of every blob read, skipped ones (binary, LFS, too large) included.
    pub blob_bytes_read: u64,
    /// Blobs skipped as binary.
    pub skipped_binary: u64,
    /// Blobs skipped as larger than `--max-file-size`.
    pub skipped_large: u64,
    /// Git LFS pointers skipped.
    pub skipped_lfs: u64,
    /// Blobs not in the object database (partial clone, or damage).
    pub missing_blobs: u64,
    /// Objects that could not be read (each reported with its id).
    pub unreadable: u64,
    /// Submodules (listed, not followed).
    pub submodules: Vec<Submodule>,
    /// Findings recorded (after suppression).
    pub findings: u64,
    /// Wall time of the git scan, milliseconds.
    pub elapsed_ms: u64,
}

/// Scans a repository's history into `scan`.
///
/// # Errors
/// The repository cannot be opened, a revision does not resolve, or the state file cannot be
/// read or written. Unreadable objects are not errors: they are reported and the scan goes on.
pub fn scan(scan: &Scan, opts: &GitOptions) -> Result<GitSummary> {
    scan_selection(scan, opts, None)
}

/// Scans the blobs introduced by exactly these commits (commits outside the set are the
/// boundary, as with `--range`): the hooks pass the commits a push adds.
///
/// # Errors
/// As [`scan`].
pub fn scan_commits(scan: &Scan, opts: &GitOptions, commits: Vec<ObjectId>) -> Result<GitSummary> {
    scan_selection(scan, opts, Some(commits))
}

/// Opens a repository; `quarantine` (git's `GIT_QUARANTINE_PATH` during pre-receive: objects of
/// a push not yet accepted) is added as an alternate object store, since libgit2 does not read
/// `GIT_ALTERNATE_OBJECT_DIRECTORIES` when a repository is opened by path.
///
/// # Errors
/// Not a repository, or the quarantine directory cannot be added.
pub fn open(path: &Path, quarantine: Option<&Path>) -> Result<git2::Repository> {
    let repo = git2::Repository::open(path)
        .with_context(|| format!("{}: not a git repository", path.display()))?;
    if let Some(q) = quarantine {
        repo.odb()
            .and_then(|odb| odb.add_disk_alternate(&q.to_string_lossy()))
            .with_context(|| format!("adding the quarantine directory {}", q.display()))?;
    }
    Ok(repo)
}

fn scan_selection(
    scan: &Scan,
    opts: &GitOptions,
    preselected: Option<Vec<ObjectId>>,
) -> Result<GitSummary> {
    let started = std::time::Instant::now();
    init_libgit2();
    let repo = open(&opts.repo, opts.quarantine.as_deref())?;
    let git_dir = repo.path().to_path_buf();
    let odb = repo.odb().context("opening the object database")?;
    let mut summary = GitSummary {
        repository: git_dir.display().to_string(),
        shallow: repo.is_shallow(),
        partial_clone: is_partial(&repo),
        ..GitSummary::default()
    };

    let old = match &opts.state {
        Some(p) => State::load(p, opts.settings)?,
        None => None,
    };
    summary.incremental = old.is_some();

    let mut walk = Walk::new(&odb, scan);
    walk.skip_binary_names = !opts.scan_binary;
    if summary.shallow {
        walk.shallow = read_shallow(&git_dir);
        tracing::warn!(
            boundary_commits = walk.shallow.len(),
            "Shallow clone: history before the shallow boundary is not in this repository; \
             scanning what is there."
        );
    }
    if let Some(s) = &old {
        walk.commits.clone_from(&s.commits);
        walk.trees.extend(s.trees.iter().map(|&t| (t, KNOWN)));
        walk.blobs.extend(s.blobs.iter().map(|&b| (b, KNOWN)));
    }

    let roots = refs::roots(&repo, scan);
    summary.refs = roots.len() as u64;
    let ranged = opts.range.is_some() || opts.since.is_some() || preselected.is_some();
    let selected = if preselected.is_some() {
        preselected
    } else if ranged {
        Some(select_range(&repo, opts, &roots)?)
    } else {
        None
    };

    // The walk runs on this thread and hands new blobs to the readers as it finds them.
    let counts = ReadCounts::default();
    let read_opts = ReadOptions {
        scan_binary: opts.scan_binary,
        max_file_size: opts.max_file_size,
        threads: opts.threads,
        partial: summary.partial_clone,
        quarantine: opts.quarantine.clone(),
    };
    // Unbounded: the queue holds object ids only (20 bytes each), and the readers take the
    // newest batches first (see `read::scan_blobs`), which needs the walk to run ahead.
    let (tx, rx) = crossbeam_channel::unbounded();
    walk.send_to(tx);
    let result = std::thread::scope(|s| {
        let readers = s.spawn(|| read::scan_blobs(&git_dir, &rx, scan, &read_opts, &counts));
        match &selected {
            Some(ids) => walk.walk_selected(ids),
            None => walk.walk_from(&roots),
        }
        if opts.include_unreachable {
            summary.unreachable_commits = walk.walk_unreachable();
        }
        // Blobs an earlier run could not read: try again, with their attribution.
        if let Some(s) = &old {
            for (&blob, &commit) in &s.pending {
                let origin = if commit == ObjectId::ZERO {
                    Origin::Dangling
                } else {
                    Origin::Commit(commit)
                };
                walk.add_job(blob, origin);
            }
        }
        walk.finish();
        tracing::info!(
            commits = walk.counts.commits,
            trees = walk.counts.trees,
            blobs = walk.jobs.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "History walked."
        );
        readers.join().expect("the blob readers panicked")
    })?;
    summary.commits = walk.counts.commits;
    summary.trees = walk.counts.trees;
    summary.messages = walk.counts.messages;
    summary.blobs = walk.jobs.len() as u64;
    summary.submodules = walk
        .submodules
        .iter()
        .map(|(path, id)| Submodule {
            path: path.clone(),
            commit: id.to_string(),
        })
        .collect();
    if !summary.submodules.is_empty() {
        let paths: Vec<&str> = summary.submodules.iter().map(|s| s.path.as_str()).collect();
        tracing::warn!(
            submodules = %paths.join(", "),
            "Submodules are not followed; scan their repositories separately."
        );
    }
    summary.blobs_scanned = counts.scanned.load(Relaxed);
    summary.blob_bytes = counts.bytes.load(Relaxed);
    summary.blob_bytes_read = counts.read_bytes.load(Relaxed);
    summary.skipped_binary = counts.binary.load(Relaxed) + walk.counts.binary_by_name;
    summary.skipped_large = counts.large.load(Relaxed);
    summary.skipped_lfs = counts.lfs.load(Relaxed);
    summary.missing_blobs = result.missing.len() as u64;
    summary.unreadable = walk.counts.unreadable + result.unreadable.len() as u64;
    if summary.missing_blobs > 0 && summary.partial_clone {
        tracing::warn!(
            missing = summary.missing_blobs,
            "Partial clone: blobs not fetched were not scanned (fetch them, then scan again)."
        );
    }

    let before = scan.stats.findings.load(Relaxed);
    record(scan, &repo, &odb, &walk, &result.hits, old.as_ref());
    summary.findings = scan.stats.findings.load(Relaxed) - before;

    if let Some(path) = &opts.state {
        let new = next_state(
            opts.settings,
            old,
            &walk,
            &result,
            ranged || summary.shallow,
        );
        new.save(path)
            .with_context(|| format!("saving the state to {}", path.display()))?;
    }
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        blobs = summary.blobs_scanned,
        bytes = summary.blob_bytes,
        findings = summary.findings,
        elapsed_ms = summary.elapsed_ms,
        "Git history scanned."
    );
    Ok(summary)
}

/// Makes libgit2's process-wide settings for read-only scans of every object once. Runs its body
/// once per process however often it is called: `main` calls it at start, before any thread
/// exists; scans call it too, so a library user who did not gets the same settings.
pub fn init_libgit2() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(configure_libgit2);
}

#[allow(unsafe_code)]
fn configure_libgit2() {
    // Each object is read once, so libgit2's object cache would only hold memory.
    git2::opts::enable_caching(false);
    // zlib's checksum already catches damaged objects; hashing every blob again costs about a
    // third of the read time.
    git2::opts::strict_hash_verification(false);
    // SAFETY: these set plain integers in libgit2's global settings; `init_libgit2` runs this
    // once, from `main` before any other thread exists (or before the first scan).
    // Packfile windows are mapped; a cap keeps resident memory flat on multi-GB packs (the
    // default, 8 GiB, would let the whole pack count towards RSS).
    // `partialclone` only says which remote fills in missing objects; a read-only scan that
    // reports missing blobs supports it (libgit2 refuses to open such a repository otherwise).
    unsafe {
        let _ = git2::opts::set_mwindow_mapped_limit(256 << 20);
        let _ = git2::opts::set_mwindow_size(32 << 20);
        let _ = git2::opts::set_extensions(&["partialclone"]);
    }
}

/// Whether the repository is a partial clone (blobs may be missing by design).
fn is_partial(repo: &git2::Repository) -> bool {
    let Ok(cfg) = repo.config() else {
        return false;
    };
    if cfg.get_string("extensions.partialclone").is_ok() {
        return true;
    }
    let Ok(mut entries) = cfg.entries(Some("remote\\..*\\.promisor")) else {
        return false;
    };
    let mut any = false;
    while let Some(Ok(e)) = entries.next() {
        any |= e.value() == Some("true");
    }
    any
}

/// The commits in `.git/shallow` (their parents are not in the repository).
fn read_shallow(git_dir: &Path) -> OidSet {
    let text = std::fs::read_to_string(git_dir.join("shallow")).unwrap_or_default();
    text.lines()
        .filter_map(|l| ObjectId::from_hex(l.trim().as_bytes()))
        .collect()
}

/// The commits of `--range A..B` or `--since REV`.
fn select_range(
    repo: &git2::Repository,
    opts: &GitOptions,
    roots: &[(ObjectId, String)],
) -> Result<Vec<ObjectId>> {
    let resolve = |rev: &str| -> Result<git2::Oid> {
        let obj = repo
            .revparse_single(rev)
            .map_err(|e| UsageError(format!("{rev}: {}", e.message())))?;
        let commit = obj
            .peel_to_commit()
            .map_err(|e| UsageError(format!("{rev}: {}", e.message())))?;
        Ok(commit.id())
    };
    let mut walk = repo.revwalk().context("starting a revision walk")?;
    if let Some(range) = &opts.range {
        let Some((a, b)) = range.split_once("..") else {
            bail!(UsageError(format!("--range {range:?}: expected A..B")));
        };
        if b.starts_with('.') {
            bail!(UsageError(format!(
                "--range {range:?}: A...B is not supported; use A..B"
            )));
        }
        let b = if b.is_empty() { "HEAD" } else { b };
        walk.push(resolve(b)?)?;
        if !a.is_empty() {
            walk.hide(resolve(a)?)?;
        }
    } else {
        for (id, _) in roots {
            // Refs that do not peel to a commit (tags of trees or blobs) are not history.
            let _ = walk.push(id.to_git2());
        }
    }
    if let Some(since) = &opts.since {
        walk.hide(resolve(since)?)?;
    }
    let mut ids = Vec::new();
    for id in walk {
        ids.push(ObjectId::from_git2(
            id.context("walking the revision range")?,
        ));
    }
    Ok(ids)
}

/// Attributes the blobs and messages with matches, works out `in_head`, and records them.
fn record(
    scan: &Scan,
    repo: &git2::Repository,
    odb: &git2::Odb<'_>,
    walk: &Walk<'_>,
    hits: &[(ObjectId, Vec<Match>)],
    old: Option<&State>,
) {
    if hits.is_empty() && walk.messages.is_empty() {
        return;
    }
    let mut attributor = Attributor::new(odb);

    // Paths, per origin: one directed walk of each introducing commit's new subtrees.
    let mut wanted: std::collections::BTreeMap<u32, OidSet> = std::collections::BTreeMap::new();
    for (blob, _) in hits {
        if let Some(&o) = walk.blobs.get(blob) {
            wanted.entry(o).or_default().insert(*blob);
        }
    }
    let mut paths: OidMap<String> = OidMap::default();
    for (&origin, blobs) in &wanted {
        let Some(o) = walk.origins.get(origin as usize) else {
            continue;
        };
        if let Some(root) = attributor.root_of(o) {
            paths.extend(attributor.paths(root, origin, &walk.trees, blobs));
        }
    }

    // What is at the tip of the default branch.
    let head = refs::head_tree(repo).map(|t| HeadIndex::build(odb, t));
    let hit_fps: OidMap<Vec<&Fingerprint>> = hits
        .iter()
        .map(|(b, ms)| (*b, ms.iter().map(|m| &m.fingerprint).collect()))
        .collect();
    let mut head_fps: HashSet<Fingerprint> = HashSet::new();
    if let Some(h) = &head {
        for b in &h.blobs {
            if let Some(fps) = hit_fps.get(b) {
                head_fps.extend(fps.iter().map(|&f| f.clone()));
            }
            if let Some(fps) = old.and_then(|s| s.found.get(b)) {
                head_fps.extend(fps.iter().cloned());
            }
        }
    }
    // A HEAD blob this run did not scan and no state knows (outside --range): scan the one at
    // a finding's path, so `in_head` holds there too.
    let mut extra: OidMap<Vec<Fingerprint>> = OidMap::default();
    let mut in_head = |fp: &Fingerprint, path: Option<&str>| -> bool {
        if head_fps.contains(fp) {
            return true;
        }
        let (Some(h), Some(p)) = (&head, path) else {
            return false;
        };
        let Some(&blob) = h.by_path.get(p) else {
            return false;
        };
        let unknown = matches!(walk.blobs.get(&blob), None | Some(&BOUNDARY));
        if !unknown {
            return false;
        }
        let fps = extra.entry(blob).or_insert_with(|| {
            odb.read(blob.to_git2())
                .map(|o| {
                    scan.scanner()
                        .scan(o.data())
                        .into_iter()
                        .filter(|m| !allowed_inline(o.data(), m.span.start))
                        .map(|m| m.fingerprint)
                        .collect()
                })
                .unwrap_or_default()
        });
        fps.contains(fp)
    };

    for (blob, matches) in hits {
        let origin = walk
            .blobs
            .get(blob)
            .and_then(|&o| walk.origins.get(o as usize))
            .cloned()
            .unwrap_or(Origin::Dangling);
        let path = paths.get(blob).cloned();
        let base = attributor.location(&origin, path);
        // One location per `in_head` value: the flag is per secret, not per blob.
        let (present, gone): (Vec<Match>, Vec<Match>) = matches
            .iter()
            .cloned()
            .partition(|m| in_head(&m.fingerprint, base.path.as_deref()));
        for (ms, flag) in [(present, true), (gone, false)] {
            if !ms.is_empty() {
                let mut loc = base.clone();
                loc.in_head = Some(flag);
                scan.record(ms, &loc);
            }
        }
    }
    for hit in &walk.messages {
        let mut loc = attributor.location(&Origin::Commit(hit.id), None);
        if hit.is_tag {
            loc.summary = loc.summary.map(|s| format!("tag message: {s}"));
        }
        let (present, gone): (Vec<Match>, Vec<Match>) = hit
            .matches
            .iter()
            .cloned()
            .partition(|m| in_head(&m.fingerprint, None));
        for (ms, flag) in [(present, true), (gone, false)] {
            if !ms.is_empty() {
                let mut l = loc.clone();
                l.in_head = Some(flag);
                scan.record(ms, &l);
            }
        }
    }
}

/// The state after this run. With `partial` (a range, a shallow clone, or unreadable trees),
/// only blobs are recorded: a commit or tree marked done must have everything under it done.
fn next_state(
    settings: u64,
    old: Option<State>,
    walk: &Walk<'_>,
    result: &read::ReadResult,
    partial: bool,
) -> State {
    let mut s = old.unwrap_or_default();
    s.settings = settings;
    let retry: OidSet = result
        .missing
        .iter()
        .chain(&result.unreadable)
        .copied()
        .collect();
    let trees_complete = !partial && walk.failed.is_empty();
    if trees_complete {
        s.commits
            .extend(walk.commits.iter().filter(|c| !walk.failed.contains(c)));
        s.trees.extend(
            walk.trees
                .iter()
                .filter(|(_, o)| **o != BOUNDARY && **o != KNOWN)
                .map(|(t, _)| *t),
        );
    }
    for &b in &walk.jobs {
        if retry.contains(&b) {
            let commit = match walk
                .blobs
                .get(&b)
                .and_then(|&o| walk.origins.get(o as usize))
            {
                Some(Origin::Commit(c)) => *c,
                _ => ObjectId::ZERO,
            };
            s.pending.insert(b, commit);
        } else {
            s.pending.remove(&b);
            s.blobs.insert(b);
        }
    }
    for (b, ms) in &result.hits {
        let mut fps: Vec<Fingerprint> = ms.iter().map(|m| m.fingerprint.clone()).collect();
        fps.sort();
        fps.dedup();
        s.found.insert(*b, fps);
    }
    s
}
