//! `keyward-agent audit verify FILE`.

use std::io::Write as _;
use std::path::Path;

use super::exit;
use crate::audit::{VerifyError, verify_file};

/// Verifies the chain; prints the outcome on stdout.
pub fn verify(file: &Path) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match verify_file(file) {
        Ok((lines, last)) => {
            writeln!(out, "ok: {lines} lines, last hash {last}")?;
            Ok(exit::OK)
        }
        Err(e @ VerifyError::Broken { .. }) => {
            writeln!(out, "FAILED: {e}")?;
            Ok(exit::FINDING)
        }
        Err(VerifyError::Io(e)) => Err(e.into()),
    }
}
