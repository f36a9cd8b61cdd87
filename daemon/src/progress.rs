//! The progress line on a terminal, and the closing summary.

use crate::group::SecretFinding;
use crate::scan::Stats;
use keyward_detectors::Severity;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Redraws a one-line status on stderr every 200 ms until dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the line; `stats` is read, never written.
    pub fn start(
        stats: Arc<dyn Fn() -> (u64, u64, u64) + Send + Sync>,
        started: Instant,
    ) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut drawn = false;
            while !flag.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if flag.load(Relaxed) {
                    break;
                }
                let (files, bytes, findings) = stats();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2Kscanning: {files} files, {}, {:.0} MB/s, {findings} findings",
                    human_bytes(bytes),
                    bytes as f64 / 1e6 / secs
                );
                let _ = err.flush();
                drawn = true;
            }
            if drawn {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// `1.2 GB`, `34.5 MB`, `800 B`.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} kB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// What a report shows: the secrets at or above the confidence asked for, and how many were
/// hidden as less confident.
pub struct Shown<'a> {
    /// The secrets shown.
    pub secrets: &'a [SecretFinding],
    /// Secrets below the confidence asked for.
    pub hidden: usize,
}

/// The closing summary: counts, throughput, secrets by severity.
pub fn summary(stats: &Stats, elapsed: Duration, shown: &Shown<'_>) -> String {
    let bytes = stats.bytes.load(Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-6);
    let mut by_sev = String::new();
    for sev in [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ] {
        let n = shown
            .secrets
            .iter()
            .filter(|s| s.first.severity == sev)
            .count();
        if n > 0 {
            by_sev.push_str(&format!(", {n} {sev}"));
        }
    }
    let n = shown.secrets.len();
    let mut s = format!(
        "Scanned {} files, {} in {:.2}s ({:.1} MB/s): {n} finding{}{by_sev}",
        stats.files.load(Relaxed),
        human_bytes(bytes),
        secs,
        bytes as f64 / 1e6 / secs,
        if n == 1 { "" } else { "s" },
    );
    let at: usize = shown.secrets.iter().map(|s| s.locations.len()).sum();
    if at > n {
        s.push_str(&format!(" at {at} places"));
    }
    if shown.hidden > 0 {
        s.push_str(&format!(
            "; {} less confident hidden (--confidence low shows them)",
            shown.hidden
        ));
    }
    let (sup, skip, err) = (
        stats.suppressed.load(Relaxed),
        stats.skipped.load(Relaxed),
        stats.errors.load(Relaxed),
    );
    if sup + skip + err > 0 {
        s.push_str(&format!(
            "; {sup} suppressed, {skip} skipped, {err} unreadable"
        ));
    }
    s.push('.');
    s
}
