//! `keyward hook …`: the git hooks (see [`crate::hooks`]).

use super::{EXIT_CLEAN, UsageError};
use crate::cli::{HookArgs, HookCommand, InstallArgs, OnTimeout, PreReceiveArgs};
use crate::config::Config;
use crate::finding::Location;
use crate::hooks::{self, Kind, push, rules, staged};
use crate::sources::dir::is_binary;
use crate::sources::git::{self, GitOptions};
use crate::suppress::allowed_inline;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status that makes git refuse the commit or push.
const EXIT_BLOCK: i32 = 1;

/// Largest blob the push hooks scan (as `scan git`'s default).
const DEFAULT_MAX_FILE_SIZE: u64 = 512 << 20;

/// `keyward hook …`.
///
/// # Errors
/// The repository, the config or the hook's input cannot be read (git then blocks: any
/// non-zero exit does).
pub fn hook(cmd: &HookCommand) -> Result<i32> {
    match cmd {
        HookCommand::PreCommit(a) => pre_commit(a),
        HookCommand::PrePush { remote, args, .. } => pre_push(remote.as_deref(), args),
        HookCommand::PreReceive(a) => pre_receive(a),
        HookCommand::PostReceive(a) => {
            post_receive(a);
            Ok(EXIT_CLEAN)
        }
        HookCommand::Install(a) => install(a, false),
        HookCommand::Uninstall(a) => install(a, true),
    }
}

fn load_config(args: &HookArgs, root: &Path) -> Result<Config> {
    Config::load(args.config.as_deref(), &[root.to_path_buf()])
        .map_err(|e| UsageError(format!("{e:#}")).into())
}

fn pre_commit(args: &HookArgs) -> Result<i32> {
    let started = Instant::now();
    let repo = staged::open()?;
    let index = staged::index(&repo)?;
    let files = staged::added(&repo, &index)?;
    if files.is_empty() {
        return Ok(EXIT_CLEAN);
    }
    let root = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
    let config = load_config(args, &root)?;
    let text: Vec<u8> = files.iter().flat_map(|f| f.text.iter().copied()).collect();
    let only = rules::candidates(&config, &text)?;
    if only.as_ref().is_some_and(Vec::is_empty) {
        tracing::debug!(
            elapsed_us = started.elapsed().as_micros() as u64,
            "No rule applies."
        );
        return Ok(EXIT_CLEAN);
    }
    tracing::debug!(rules = ?only, "Rules whose keywords occur in the added lines.");
    let scan = hooks::build_scan(&config, &root, only.as_deref())?;
    tracing::debug!(
        rules = scan.scanner().rules().len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "Rules compiled."
    );
    for f in &files {
        if scan.suppressor().path_allowed(&f.path) {
            continue;
        }
        let blob = repo
            .find_blob(f.blob)
            .with_context(|| format!("{}: reading the staged blob", f.path))?;
        let data = blob.content();
        if is_binary(data) {
            continue;
        }
        // The whole staged file is scanned (keywords and context may sit on lines that are
        // not new), and only matches starting on an added line are kept.
        let matches = scan.scanner().scan(data);
        tracing::debug!(path = %f.path, matches = matches.len(), added_lines = f.lines.len(), "Scanned.");
        let kept: Vec<_> = matches
            .into_iter()
            .filter(|m| f.lines.contains(&m.line) && !allowed_inline(data, m.span.start))
            .collect();
        let loc = Location {
            source: crate::finding::SourceKind::Git,
            path: Some(f.path.clone()),
            ..Location::default()
        };
        scan.record(kept, &loc);
    }
    let findings = hooks::blocking(scan.take_findings());
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        "Staged changes scanned."
    );
    if findings.is_empty() {
        return Ok(EXIT_CLEAN);
    }
    eprint!("{}", hooks::block_message(Kind::PreCommit, &findings));
    Ok(EXIT_BLOCK)
}

fn read_stdin() -> Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the hook's standard input")?;
    Ok(input)
}

/// Scans `commits` of the repository at `git_dir` on a worker thread; `None` when `deadline`
/// passed first (or had passed once the rules were compiled).
fn scan_pushed(
    git_dir: &Path,
    root: &Path,
    config: &Config,
    commits: Vec<git::oid::ObjectId>,
    deadline: Option<Instant>,
    quarantine: Option<PathBuf>,
) -> Result<Option<Vec<crate::finding::Finding>>> {
    let scan = Arc::new(hooks::build_scan(config, &root.to_path_buf(), None)?);
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Ok(None);
    }
    let opts = GitOptions {
        repo: git_dir.to_path_buf(),
        include_unreachable: false,
        since: None,
        range: None,
        state: None,
        scan_binary: false,
        max_file_size: config.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE),
        threads: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        settings: 0,
        quarantine,
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    let worker = scan.clone();
    std::thread::spawn(move || {
        let _ = tx.send(git::scan_commits(&worker, &opts, commits));
    });
    let result = match deadline {
        Some(d) => match rx.recv_deadline(d) {
            Ok(r) => r,
            // The worker is abandoned; the process exits right after.
            Err(_) => return Ok(None),
        },
        None => rx.recv().context("the scan thread stopped")?,
    };
    let summary = result?;
    tracing::info!(
        commits = summary.commits,
        blobs = summary.blobs_scanned,
        elapsed_ms = summary.elapsed_ms,
        "Pushed commits scanned."
    );
    Ok(Some(scan.take_findings()))
}

fn pre_push(remote: Option<&str>, args: &HookArgs) -> Result<i32> {
    let repo = staged::open()?;
    let updates = push::parse_push(&read_stdin()?).map_err(|e| UsageError(format!("{e:#}")))?;
    // What the remote has: the old tips it reported, and every remote-tracking ref (a new
    // branch's commits are new only if no remote-tracking ref reaches them).
    let mut known: Vec<git2::Oid> = updates.iter().filter_map(|u| u.old).collect();
    known.extend(push::ref_targets(&repo, "refs/remotes/"));
    let commits = push::new_commits(&repo, &updates, &known)?;
    tracing::info!(remote, commits = commits.len(), "Commits to push.");
    if commits.is_empty() {
        return Ok(EXIT_CLEAN);
    }
    let git_dir = repo.path().to_path_buf();
    let root = repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf();
    let config = load_config(args, &root)?;
    let findings = hooks::blocking(
        scan_pushed(&git_dir, &root, &config, commits, None, None)?.unwrap_or_default(),
    );
    if findings.is_empty() {
        return Ok(EXIT_CLEAN);
    }
    eprint!("{}", hooks::block_message(Kind::PrePush, &findings));
    Ok(EXIT_BLOCK)
}

fn pre_receive(a: &PreReceiveArgs) -> Result<i32> {
    let started = Instant::now();
    // git runs the hook in the repository with the push's objects in a quarantine directory
    // that libgit2 would not see on its own.
    let quarantine = std::env::var_os("GIT_QUARANTINE_PATH")
        .filter(|q| !q.is_empty())
        .map(PathBuf::from);
    let git_dir = std::env::var_os("GIT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let repo = git::open(&git_dir, quarantine.as_deref())?;
    let git_dir = repo.path().to_path_buf();
    let updates = push::parse_receive(&read_stdin()?).map_err(|e| UsageError(format!("{e:#}")))?;
    // Before the refs are updated, every ref is what the server already has.
    let known = push::ref_targets(&repo, "refs/");
    let commits = push::new_commits(&repo, &updates, &known)?;
    if commits.is_empty() {
        return Ok(EXIT_CLEAN);
    }
    let config = load_config(&a.args, &git_dir)?;
    let deadline = started + Duration::from_secs_f64(a.time_budget.max(0.0));
    let n = commits.len();
    match scan_pushed(
        &git_dir,
        &git_dir,
        &config,
        commits,
        Some(deadline),
        quarantine,
    )? {
        Some(findings) => {
            let secrets = hooks::blocking(findings);
            if secrets.is_empty() {
                return Ok(EXIT_CLEAN);
            }
            eprint!("{}", hooks::block_message(Kind::PreReceive, &secrets));
            Ok(EXIT_BLOCK)
        }
        None => {
            let secs = a.time_budget;
            match a.on_timeout {
                OnTimeout::Reject => {
                    eprintln!(
                        "keyward: the scan of {n} pushed commits did not finish within the {secs} s \
                         time budget; push REJECTED (on-timeout = reject). Push fewer commits at a \
                         time, or ask the administrators to raise the budget."
                    );
                    Ok(EXIT_BLOCK)
                }
                OnTimeout::Allow => {
                    eprintln!(
                        "keyward: warning: the scan of {n} pushed commits did not finish within the \
                         {secs} s time budget; push ALLOWED WITHOUT A COMPLETE SCAN (on-timeout = \
                         allow). Run `keyward scan git` on the repository."
                    );
                    Ok(EXIT_CLEAN)
                }
            }
        }
    }
}

fn install(a: &InstallArgs, remove: bool) -> Result<i32> {
    let mut names = Vec::new();
    if a.pre_commit {
        names.extend(["pre-commit", "pre-merge-commit"]);
    }
    if a.pre_push {
        names.push("pre-push");
    }
    if a.pre_receive {
        names.push("pre-receive");
    }
    if a.post_receive {
        names.push("post-receive");
    }
    if names.is_empty() {
        if remove {
            names = vec![
                "pre-commit",
                "pre-merge-commit",
                "pre-push",
                "pre-receive",
                "post-receive",
            ];
        } else {
            let bare = git2::Repository::open(&a.repo).is_ok_and(|r| r.is_bare());
            names = if bare {
                vec!["pre-receive"]
            } else {
                vec!["pre-commit", "pre-merge-commit", "pre-push"]
            };
        }
    }
    let lines = if remove {
        hooks::install::uninstall(&a.repo, &names)
    } else {
        let exe = std::env::current_exe().context("locating the keyward binary")?;
        hooks::install::install(&a.repo, &names, &exe)
    }
    .map_err(|e| UsageError(format!("{e:#}")))?;
    for l in lines {
        eprintln!("keyward: {l}");
    }
    Ok(EXIT_CLEAN)
}

/// `post-receive`: tells the daemon that this repository's refs changed. Never fails the push
/// (the refs are updated already); says so when the daemon cannot be told.
fn post_receive(a: &crate::cli::PostReceiveArgs) {
    // git passes the pushed refs on stdin; the daemon finds the new objects itself.
    let _ = read_stdin();
    let git_dir = std::env::var_os("GIT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let git_dir = std::fs::canonicalize(&git_dir).unwrap_or(git_dir);
    let endpoint = crate::client::Endpoint::Unix(a.socket.clone());
    let body = serde_json::json!({ "path": git_dir });
    match crate::client::request(
        &endpoint,
        "POST",
        "/v1/notify/git",
        Some(&body),
        Duration::from_secs(5),
    ) {
        Ok(r) if r.status == 202 => {}
        Ok(r) => {
            let msg = r
                .body
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            eprintln!(
                "keyward: the daemon did not queue a scan of this push ({}: {msg})",
                r.status
            );
        }
        Err(e) => eprintln!(
            "keyward: the pushed refs were not sent for scanning: {e:#}. Scan them with \
             `keyward scan git`."
        ),
    }
}
