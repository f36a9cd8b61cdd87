//! Exponential back-off for retried Vault calls.

use std::time::Duration;

/// Doubles from 250 ms up to 30 s, with ±20 % jitter so many sessions don't retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(250);
// NOTE: 30 s cap: an outage of minutes still gets a revocation within half a minute of recovery.
const MAX: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Starts at the first delay.
    pub fn new() -> Self {
        Self { next: FIRST }
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }

    /// The delay to wait now; the following one is doubled.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        let mut b = [0u8; 1];
        let _ = getrandom::fill(&mut b);
        // jitter in [-20 %, +20 %]
        let factor = 0.8 + 0.4 * f64::from(b[0]) / 255.0;
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let mut b = Backoff::new();
        let d: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(200) && d[0] <= Duration::from_millis(300));
        assert!(d[1] >= Duration::from_millis(400));
        assert!(d[11] <= Duration::from_secs(36));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_loop_gives_up_on_time() {
        // A loop that retries with back-off for 10 s of (paused) time runs a bounded count.
        let start = tokio::time::Instant::now();
        let mut b = Backoff::new();
        let mut tries = 0;
        while start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(b.next_delay()).await;
            tries += 1;
        }
        assert!((4..=8).contains(&tries), "{tries}");
    }
}
