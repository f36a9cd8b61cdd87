//! `keyward scan git`: a repository's whole history (see [`crate::sources::git`]).

use super::UsageError;
use super::scan::{prepare, run, threads};
use crate::cli::GitArgs;
use crate::sources::git::{self, GitOptions, state::settings_hash};
use anyhow::{Context, Result};

/// Default `--max-file-size` (the same as `scan dir`'s).
const DEFAULT_MAX_FILE_SIZE: u64 = 512 << 20;

/// `keyward scan git`.
pub fn git(args: &GitArgs, quiet: bool) -> Result<i32> {
    if !args.path.exists() {
        return Err(UsageError(format!("{}: no such directory", args.path.display())).into());
    }
    if let Err(e) = git2::Repository::open(&args.path) {
        return Err(UsageError(format!(
            "{}: not a git repository ({})",
            args.path.display(),
            e.message()
        ))
        .into());
    }
    if args.include_unreachable && (args.range.is_some() || args.since.is_some()) {
        return Err(UsageError(
            "--include-unreachable scans what no ref reaches; it does not combine with --range or --since"
                .to_owned(),
        )
        .into());
    }
    let (config, scan) = prepare(&args.scan, std::slice::from_ref(&args.path))?;
    let max_file_size = args
        .max_file_size
        .or(config.max_file_size)
        .unwrap_or(DEFAULT_MAX_FILE_SIZE);
    let decode = !args.scan.no_decode && config.decode_base64.unwrap_or(true);
    let keep_failed = args.scan.keep_failed_validation || config.keep_failed_validation;

    // What decides whether a blob scanned before would give the same findings now.
    let mut parts: Vec<Vec<u8>> = vec![
        env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        format!("decode={decode} keep_failed={keep_failed}").into_bytes(),
        format!("binary={} max={max_file_size}", args.scan_binary).into_bytes(),
    ];
    for r in scan.scanner().rules().rules() {
        parts.push(
            format!(
                "{}\u{1}{}\u{1}{}\u{1}{:?}\u{1}{}",
                r.id().as_str(),
                r.pattern(),
                r.keywords().join("\u{2}"),
                r.validator(),
                r.severity().as_str()
            )
            .into_bytes(),
        );
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let opts = GitOptions {
        repo: args.path.clone(),
        include_unreachable: args.include_unreachable,
        since: args.since.clone(),
        range: args.range.clone(),
        state: args.state.clone(),
        scan_binary: args.scan_binary,
        max_file_size,
        threads: threads(&args.scan),
        settings: settings_hash(&refs),
        quarantine: None,
    };
    run(&args.scan, quiet, scan, |scan| {
        let summary = git::scan(scan, &opts)?;
        if let Some(path) = &args.stats_json {
            let text = serde_json::to_string_pretty(&summary).expect("a summary serializes");
            fs_err::write(path, text + "\n").context("writing --stats-json")?;
        }
        Ok(())
    })
}
