//! `keyward scan image`.

use super::UsageError;
use super::scan::{prepare, run, threads};
use crate::cli::ImageArgs;
use crate::sources::archive::ArchiveLimits;
use crate::sources::image::layer::LayerOptions;
use crate::sources::image::registry::{Credentials, RegistryOptions};
use crate::sources::image::{ImageOptions, ImageScan, LayerCache, Target};
use anyhow::{Result, bail};
use keyward_detectors::Secret;

/// Default `--max-file-size` (as `scan dir`).
const DEFAULT_MAX_FILE_SIZE: u64 = 512 << 20;

/// `keyward scan image TARGET…`. A digest mismatch fails the command (exit 2) after the
/// report is written: the findings are real, and so is the tampering.
pub fn image(args: &ImageArgs, quiet: bool) -> Result<i32> {
    for t in &args.targets {
        Target::parse(t).map_err(UsageError)?;
    }
    let credentials = match (&args.username, &args.password) {
        (Some(u), Some(p)) => Some(Credentials {
            username: u.clone(),
            password: Secret::new(p.clone()),
        }),
        (None, None) => None,
        _ => return Err(UsageError("--username and --password go together".into()).into()),
    };
    let (config, scan) = prepare(&args.scan, &[])?;
    let defaults = ArchiveLimits::default();
    let opts = ImageOptions {
        layer: LayerOptions {
            archives: ArchiveLimits {
                max_depth: args.archive_depth,
                max_member_size: args.max_archive_size.unwrap_or(defaults.max_member_size),
                ..defaults
            },
            max_file_size: args
                .max_file_size
                .or(config.max_file_size)
                .unwrap_or(DEFAULT_MAX_FILE_SIZE),
            scan_binary: args.scan_binary,
            threads: threads(&args.scan),
        },
        platforms: args.platform.clone(),
        registry: RegistryOptions {
            insecure: args.insecure,
            credentials,
            authfile: args.authfile.clone(),
        },
        docker_host: args.docker_host.clone(),
    };
    let cache = LayerCache::default();
    let mut integrity = Vec::new();
    let mut failed = None;
    let code = run(&args.scan, quiet, scan, |scan| {
        let ctx = ImageScan::new(scan, &opts, &cache);
        for t in &args.targets {
            if let Err(e) = ctx.target(t) {
                // One target: it is the command's error. Several: report, go on, and fail
                // at the end so that the other targets' findings are still reported.
                if args.targets.len() == 1 || e.downcast_ref::<UsageError>().is_some() {
                    return Err(e.context(t.clone()));
                }
                scan.error(t, &format!("{e:#}"));
                failed = Some(t.clone());
            }
        }
        integrity = ctx.integrity_errors();
        Ok(())
    })?;
    if let Some(t) = failed {
        bail!("{t}: could not be scanned; see the warnings above");
    }
    if !integrity.is_empty() {
        bail!(
            "integrity check failed (the image may have been tampered with):\n  {}",
            integrity.join("\n  ")
        );
    }
    Ok(code)
}
