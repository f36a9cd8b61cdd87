//! `keyward scan …`: the shared set-up and ending of every scan, and the dir and stdin scans.

use super::UsageError;
use crate::cli::{DirArgs, ScanArgs, StdinArgs};
use crate::config::Config;
use crate::group;
use crate::prepare::{self, load_rules};
use crate::progress::{self, Progress};
use crate::report::{self, ReportContext};
use crate::scan::Scan;
use crate::sources;
use crate::suppress::Suppressor;
use anyhow::{Context, Result};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Default `--max-file-size`.
const DEFAULT_MAX_FILE_SIZE: u64 = 512 << 20;

/// Loads config and rules and builds the [`Scan`] every source feeds.
///
/// # Errors
/// A bad config or rule file (a [`UsageError`], exit 64).
pub fn prepare(args: &ScanArgs, roots: &[PathBuf]) -> Result<(Config, Scan)> {
    let config =
        Config::load(args.config.as_deref(), roots).map_err(|e| UsageError(format!("{e:#}")))?;
    let rules = load_rules(&args.rule_files, &config, &args.only, &args.disable)?;
    let scanner = prepare::scanner(
        Arc::new(rules),
        &config,
        args.no_decode,
        args.keep_failed_validation,
    );
    let suppressor = Suppressor::new(&config, roots, args.baseline.as_deref())
        .map_err(|e| UsageError(format!("{e:#}")))?;
    Ok((config, Scan::new(scanner, suppressor)))
}

/// Worker threads: `--threads`, or every core.
pub fn threads(args: &ScanArgs) -> usize {
    args.threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Runs `source` on `scan` with a progress line (on a terminal), then writes the report and the
/// summary, and returns the exit status.
pub fn run(
    args: &ScanArgs,
    quiet: bool,
    scan: Scan,
    source: impl FnOnce(&Scan) -> Result<()>,
) -> Result<i32> {
    let scan = Arc::new(scan);
    let show_progress = !quiet && std::io::stderr().is_terminal();
    let result = {
        let _progress = show_progress.then(|| {
            let s = scan.clone();
            Progress::start(
                Arc::new(move || {
                    (
                        s.stats.files.load(Relaxed),
                        s.stats.bytes.load(Relaxed),
                        s.stats.findings.load(Relaxed),
                    )
                }),
                scan.started,
            )
        });
        source(&scan)
    };
    let elapsed = scan.started.elapsed();
    let (secrets, hidden) =
        group::at_least(group::group(scan.take_findings()), args.confidence.into());
    let summary = progress::summary(
        &scan.stats,
        elapsed,
        &progress::Shown {
            secrets: &secrets,
            hidden,
        },
    );
    let errors = scan.stats.errors.load(Relaxed);
    let rules = scan.scanner().rules().clone();
    result?;

    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => args.output.is_none() && std::io::stdout().is_terminal(),
    };
    let ctx = ReportContext {
        show_secrets: args.show_secrets,
        rules: &rules,
        color,
        per_location: args.per_location,
    };
    match &args.output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(
                fs_err::File::create(path).context("creating the report file")?,
            );
            report::write(&mut file, args.format, &secrets, &ctx)?;
            file.flush()
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            report::write(&mut out, args.format, &secrets, &ctx)?;
            out.flush()?;
        }
    }
    if !quiet && (args.summary || std::io::stderr().is_terminal()) {
        eprintln!("{summary}");
    }
    if errors > 0 {
        tracing::warn!(
            unreadable = errors,
            "Some inputs could not be scanned; see the warnings above."
        );
    }
    Ok(if secrets.is_empty() {
        super::EXIT_CLEAN
    } else {
        args.exit_code
    })
}

/// `keyward scan dir`.
pub fn dir(args: &DirArgs, quiet: bool) -> Result<i32> {
    for p in &args.paths {
        if !p.exists() {
            return Err(UsageError(format!("{}: no such file or directory", p.display())).into());
        }
    }
    let (config, scan) = prepare(&args.scan, &args.paths)?;
    let opts = sources::dir::DirOptions {
        respect_gitignore: args.respect_gitignore,
        scan_binary: args.scan_binary,
        max_file_size: args
            .max_file_size
            .or(config.max_file_size)
            .unwrap_or(DEFAULT_MAX_FILE_SIZE),
        threads: threads(&args.scan),
        archives: {
            let defaults = sources::archive::ArchiveLimits::default();
            sources::archive::ArchiveLimits {
                max_depth: args.archive_depth,
                max_member_size: args.max_archive_size.unwrap_or(defaults.max_member_size),
                ..defaults
            }
        },
    };
    run(&args.scan, quiet, scan, |scan| {
        sources::dir::scan(scan, &args.paths, &opts);
        Ok(())
    })
}

/// `keyward scan stdin`.
pub fn stdin(args: &StdinArgs, quiet: bool) -> Result<i32> {
    let (_config, scan) = prepare(&args.scan, &[])?;
    run(&args.scan, quiet, scan, |scan| {
        sources::stdin::scan(scan, args.label.as_deref()).context("reading standard input")
    })
}
