//! Errors every layer shares: [`UsageError`] (the user's input is wrong, exit 64) and the exit
//! statuses. Sources, hooks and the daemon return these; only `main.rs` maps them to a status.

/// Exit status: no findings.
pub const EXIT_CLEAN: i32 = 0;
/// Exit status: an error stopped the command.
pub const EXIT_ERROR: i32 = 2;
/// Exit status: bad usage or configuration (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;

/// An error that is the user's input, not the machine: exits with [`EXIT_USAGE`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}
