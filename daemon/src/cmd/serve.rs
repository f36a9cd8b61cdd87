//! `keyward serve` (see [`crate::serve`]).

use super::EXIT_CLEAN;
use crate::cli::ServeArgs;
use anyhow::Result;

/// `keyward serve [--check]`.
///
/// # Errors
/// A bad config (exit 64), or the daemon could not start.
pub fn serve(args: &ServeArgs) -> Result<i32> {
    if args.check {
        crate::serve::check(&args.config)?;
        eprintln!(
            "keyward: {}: configuration and rules are valid",
            args.config.display()
        );
        return Ok(EXIT_CLEAN);
    }
    crate::serve::run(&args.config)?;
    Ok(EXIT_CLEAN)
}
