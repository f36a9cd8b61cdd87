//! Helpers shared by the end-to-end suites.

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test: `KEYWARD_BIN` (to test a release build or a .deb), else cargo's.
pub(crate) fn keyward() -> Command {
    let bin =
        std::env::var_os("KEYWARD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_keyward").into());
    let mut c = Command::new(bin);
    c.env_remove("KEYWARD_LOG").env_remove("KEYWARD_CONFIG");
    c
}

/// Runs `keyward ARGS` in `dir`.
pub(crate) fn run_in(dir: &Path, args: &[&str]) -> Output {
    keyward()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run keyward")
}

/// A GitHub classic token with a valid checksum, different for each `seed`.
pub(crate) fn gh_token(seed: u64) -> String {
    const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let random: String = (0..30)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            B62[(x % 62) as usize] as char
        })
        .collect();
    format!(
        "ghp_{random}{}",
        keyward_detectors::token_checksum(random.as_bytes())
    )
}

/// Parses a JSON report (an array).
pub(crate) fn json(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON array ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes a file, creating parent directories.
pub(crate) fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}
