//! `keyward scan git`: a repository's whole history (see [`crate::sources::git`]).

use super::UsageError;
use super::scan::{prepare, run, threads};
use crate::cli::GitArgs;
use crate::sources::git::{self, GitOptions};
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

    let settings = git::state::scan_settings(
        scan.scanner().rules(),
        decode,
        keep_failed,
        args.scan_binary,
        max_file_size,
    );
    let opts = GitOptions {
        repo: args.path.clone(),
        include_unreachable: args.include_unreachable,
        since: args.since.clone(),
        range: args.range.clone(),
        state: args.state.clone(),
        scan_binary: args.scan_binary,
        max_file_size,
        threads: threads(&args.scan),
        settings,
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
