//! Git hooks: stop a secret before it enters the history.
//!
//! - pre-commit ([`staged`]): only the lines the commit adds are reported, and only the rules
//!   whose keywords occur in them are compiled ([`rules`]), so a small commit costs a few
//!   milliseconds instead of the ~200 ms the whole pack takes to compile.
//! - pre-push and pre-receive ([`push`]): the commits the other side does not have yet, scanned
//!   with the history scanner (`crate::sources::git::scan_commits`), objects in git's
//!   quarantine directory included.
//! - [`install`]: hook scripts that chain, never clobber, and uninstall cleanly.
//!
//! Every blocking message names the place, the rule and the redacted secret, and says how to
//! proceed (`Kind::advice`).

pub mod install;
pub mod push;
pub mod rules;
pub mod staged;

use crate::config::Config;
use crate::error::UsageError;
use crate::finding::Finding;
use crate::group::{self, SecretFinding};
use crate::scan::Scan;
use crate::suppress::Suppressor;
use anyhow::Result;
use keyward_detectors::Confidence;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// Which hook is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The developer's commit.
    PreCommit,
    /// The developer's push.
    PrePush,
    /// The server receiving a push.
    PreReceive,
}

impl Kind {
    /// How to get past the block.
    fn advice(self) -> &'static str {
        match self {
            Kind::PreCommit => {
                "How to proceed:\n\
                 \x20 - remove the secret from the file, `git add` it and commit again; if it is real, revoke it\n\
                 \x20   (it is in your work tree, maybe in editor backups or shell history);\n\
                 \x20 - or, if it is not a live secret (a test fixture, an example), add `keyward:allow <reason>`\n\
                 \x20   in a comment on its line;\n\
                 \x20 - or add its fingerprint to .keywardignore at the repository root, with a `# reason` comment.\n"
            }
            Kind::PrePush => {
                "How to proceed: the secret is in commits that are not pushed yet, so rewrite them.\n\
                 \x20 - the last commit: fix the file, `git add` it, `git commit --amend`;\n\
                 \x20 - an older one: `git rebase -i <commit>^`, mark it `edit`, fix, `git commit --amend`,\n\
                 \x20   `git rebase --continue`; then push again. If the secret is real, revoke it.\n\
                 \x20 - if it is not a live secret: add `keyward:allow <reason>` on its line (in a new commit\n\
                 \x20   that rewrites the one adding it), or its fingerprint to .keywardignore at the\n\
                 \x20   repository root.\n"
            }
            Kind::PreReceive => {
                "How to proceed: the push was rejected and nothing was written. Remove the secret from\n\
                 your local history, then push again:\n\
                 \x20 - the last commit: fix the file, `git add` it, `git commit --amend`;\n\
                 \x20 - an older one: `git rebase -i <commit>^`, mark it `edit`, fix, `git commit --amend`,\n\
                 \x20   `git rebase --continue` (many commits: `git filter-repo --replace-text`).\n\
                 The secret has left your machine: if it is real, revoke it.\n\
                 If it is not a live secret: `keyward:allow <reason>` on its line (in the commit that adds\n\
                 it), or ask the repository's administrators to add its fingerprint to the server's\n\
                 .keywardignore.\n"
            }
        }
    }
}

/// Builds the scan a hook runs: config, rules (`only`: a subset; `None`: all), suppression
/// (`.keywardignore` and `.keyward.toml` in `root`).
///
/// # Errors
/// A bad config or rule file.
pub fn build_scan(config: &Config, root: &PathBuf, only: Option<&[String]>) -> Result<Scan> {
    let rules = crate::prepare::load_rules(&[], config, only.unwrap_or(&[]), &[])?;
    let scanner = crate::prepare::scanner(Arc::new(rules), config, false, false);
    let suppressor = Suppressor::new(config, std::slice::from_ref(root), None)
        .map_err(|e| UsageError(format!("{e:#}")))?;
    Ok(Scan::new(scanner, suppressor))
}

/// The secrets that block: one per secret, medium confidence and up (test fixtures and
/// documentation examples do not block; they are logged at info level).
pub fn blocking(findings: Vec<Finding>) -> Vec<SecretFinding> {
    let (shown, hidden) = group::at_least(group::group(findings), Confidence::Medium);
    if hidden > 0 {
        tracing::info!(
            secrets = hidden,
            "Less confident findings (test data, examples) do not block."
        );
    }
    shown
}

/// The message a blocking hook prints on stderr.
pub fn block_message(kind: Kind, secrets: &[SecretFinding]) -> String {
    let what = match kind {
        Kind::PreCommit => "this commit adds",
        Kind::PrePush => "the commits being pushed add",
        Kind::PreReceive => "this push adds",
    };
    let n = secrets.len();
    let plural = if n == 1 { "" } else { "s" };
    let verdict = match kind {
        Kind::PreCommit => "commit blocked",
        Kind::PrePush => "push blocked",
        Kind::PreReceive => "push rejected",
    };
    let mut s = format!("keyward: {what} {n} secret{plural}; {verdict}.\n\n");
    for secret in secrets {
        let f = &secret.first;
        let at = &f.location;
        let place = match &at.path {
            Some(p) => format!("{p}:{}", at.line),
            None => format!("commit message, line {}", at.line),
        };
        let _ = writeln!(s, "  {place}  {}  {}", f.rule, f.redacted);
        let _ = write!(s, "      {}; fingerprint {}", f.rule_name, f.fingerprint);
        if let Some(c) = &at.commit {
            let short = c.get(..12).unwrap_or(c);
            let _ = write!(s, "; commit {short}");
            if let Some(summary) = &at.summary {
                let _ = write!(s, " ({summary})");
            }
        }
        let more = secret.locations.len() - 1;
        if more > 0 {
            let _ = write!(
                s,
                "; also at {more} more place{}",
                if more == 1 { "" } else { "s" }
            );
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(kind.advice());
    s
}
