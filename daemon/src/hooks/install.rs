//! `keyward hook install` / `uninstall`: hook scripts in the repository's hooks directory
//! (`core.hooksPath` respected, as git resolves it). A hook that is already there is never
//! overwritten: it is moved to `NAME.keyward-chained` and run first (with the same standard
//! input), and `uninstall` puts it back. Only scripts carrying [`MARKER`] are ever removed.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line that marks a hook script as keyward's.
pub const MARKER: &str = "# keyward-managed-hook";

/// Suffix of a pre-existing hook that keyward's script runs first.
const CHAINED: &str = ".keyward-chained";

/// The hooks directory git uses for the repository at `repo` (`core.hooksPath` respected).
///
/// # Errors
/// `repo` is not a git repository, or git cannot be run.
pub fn hooks_dir(repo: &Path) -> Result<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "{}: not a git repository ({})",
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(if p.is_absolute() { p } else { repo.join(p) })
}

/// The `keyward hook` subcommand a hook runs: a merge without conflicts runs
/// `pre-merge-commit` instead of `pre-commit`, with the same staged-index-against-HEAD check.
fn command(name: &str) -> &str {
    if name == "pre-merge-commit" {
        "pre-commit"
    } else {
        name
    }
}

/// Whether the hook `name` reads the ref lines on standard input.
fn reads_stdin(name: &str) -> bool {
    matches!(name, "pre-push" | "pre-receive" | "post-receive")
}

/// The script for hook `name`, running `exe`.
fn script(name: &str, exe: &Path, chained: bool) -> String {
    let exe = shell_quote(&exe.to_string_lossy());
    let cmd = command(name);
    let mut s = format!(
        "#!/bin/sh\n{MARKER}\n# Installed by `keyward hook install`; `keyward hook uninstall` removes it\n\
         # (and restores {name}{CHAINED}, the hook that was here before, if any).\n"
    );
    let chain = format!("\"$(dirname \"$0\")/{name}{CHAINED}\"");
    match (chained, reads_stdin(name)) {
        (false, _) => {}
        (true, false) => s.push_str(&format!("{chain} \"$@\" || exit $?\n")),
        (true, true) => s.push_str(&format!(
            "input=$(cat)\nprintf '%s\\n' \"$input\" | {chain} \"$@\" || exit $?\n\
             printf '%s\\n' \"$input\" | exec {exe} hook {cmd} \"$@\"\n"
        )),
    }
    if !(chained && reads_stdin(name)) {
        s.push_str(&format!("exec {exe} hook {cmd} \"$@\"\n"));
    }
    s
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn is_ours(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l == MARKER))
}

/// Installs the hooks `names` into `repo`'s hooks directory; returns one line per hook saying
/// what was done.
///
/// # Errors
/// The hooks directory cannot be found or written, or a chained hook is already in the way.
pub fn install(repo: &Path, names: &[&str], exe: &Path) -> Result<Vec<String>> {
    let dir = hooks_dir(repo)?;
    fs_err::create_dir_all(&dir)?;
    let mut done = Vec::new();
    for &name in names {
        let path = dir.join(name);
        let saved = dir.join(format!("{name}{CHAINED}"));
        let mut chained = saved.exists();
        if path.exists() && !is_ours(&path) {
            if saved.exists() {
                bail!(
                    "{}: a hook is there, and {} too; refusing to overwrite either. Merge them by hand, then run install again.",
                    path.display(),
                    saved.display()
                );
            }
            fs_err::rename(&path, &saved)?;
            chained = true;
            done.push(format!(
                "{name}: the existing hook was moved to {} and runs first",
                saved.display()
            ));
        }
        fs_err::write(&path, script(name, exe, chained))?;
        make_executable(&path)?;
        done.push(format!("{name}: installed {}", path.display()));
    }
    Ok(done)
}

/// Removes the keyward hooks `names` (those carrying [`MARKER`]) and restores chained ones.
///
/// # Errors
/// The hooks directory cannot be found or written.
pub fn uninstall(repo: &Path, names: &[&str]) -> Result<Vec<String>> {
    let dir = hooks_dir(repo)?;
    let mut done = Vec::new();
    for &name in names {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        if !is_ours(&path) {
            done.push(format!("{name}: not installed by keyward; left alone"));
            continue;
        }
        fs_err::remove_file(&path)?;
        let saved = dir.join(format!("{name}{CHAINED}"));
        if saved.exists() {
            fs_err::rename(&saved, &path)?;
            done.push(format!("{name}: removed; the previous hook is back"));
        } else {
            done.push(format!("{name}: removed"));
        }
    }
    Ok(done)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}
