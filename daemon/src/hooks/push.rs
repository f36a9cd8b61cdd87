//! Which commits a push brings: for pre-receive, the `old new ref` lines git gives the hook;
//! for pre-push, `local_ref local_sha remote_ref remote_sha`. In both, the commits reachable
//! from the new tips and not from what the other side already has.

use crate::sources::git::oid::ObjectId;
use anyhow::{Context, Result, bail};

/// One ref update read from a hook's standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The ref being updated.
    pub name: String,
    /// What the receiving side has now (`None`: the ref is new there).
    pub old: Option<git2::Oid>,
    /// What it will have (`None`: the ref is being deleted).
    pub new: Option<git2::Oid>,
}

fn oid(hex: &str) -> Result<Option<git2::Oid>> {
    let id = git2::Oid::from_str(hex).with_context(|| format!("{hex:?}: not an object id"))?;
    Ok((!id.is_zero()).then_some(id))
}

/// Parses pre-receive input: `OLD NEW REF` per line.
///
/// # Errors
/// A line that is not three fields with two object ids.
pub fn parse_receive(input: &str) -> Result<Vec<Update>> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [old, new, name] = f[..] else {
            bail!("pre-receive input: expected `OLD NEW REF`, got {line:?}");
        };
        out.push(Update {
            name: name.to_owned(),
            old: oid(old)?,
            new: oid(new)?,
        });
    }
    Ok(out)
}

/// Parses pre-push input: `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA` per line.
///
/// # Errors
/// A line that is not four fields with two object ids.
pub fn parse_push(input: &str) -> Result<Vec<Update>> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [_local, local_sha, remote_ref, remote_sha] = f[..] else {
            bail!(
                "pre-push input: expected `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA`, got {line:?}"
            );
        };
        out.push(Update {
            name: remote_ref.to_owned(),
            old: oid(remote_sha)?,
            new: oid(local_sha)?,
        });
    }
    Ok(out)
}

/// The commits reachable from the updates' new tips and from none of `known` (deleted refs
/// bring nothing). Tips that are not commits (a tag of a tree) are peeled where possible and
/// otherwise skipped.
///
/// # Errors
/// A new tip is not in the repository, or the walk fails.
pub fn new_commits(
    repo: &git2::Repository,
    updates: &[Update],
    known: &[git2::Oid],
) -> Result<Vec<ObjectId>> {
    let mut walk = repo.revwalk().context("starting a revision walk")?;
    let mut any = false;
    for u in updates {
        let Some(new) = u.new else { continue };
        let obj = repo
            .find_object(new, None)
            .with_context(|| format!("{}: {new} is not in the repository", u.name))?;
        if let Ok(c) = obj.peel_to_commit() {
            walk.push(c.id())?;
            any = true;
        }
    }
    if !any {
        return Ok(Vec::new());
    }
    for &k in known {
        // What the other side has but this repository lacks (a remote tip never fetched)
        // cannot be hidden, and is not in this push anyway.
        if let Ok(c) = repo.find_object(k, None).and_then(|o| o.peel_to_commit()) {
            walk.hide(c.id())?;
        }
    }
    let mut ids = Vec::new();
    for id in walk {
        ids.push(ObjectId::from_git2(
            id.context("walking the pushed commits")?,
        ));
    }
    Ok(ids)
}

/// Every ref's target whose name starts with `prefix` (`refs/` for all).
pub fn ref_targets(repo: &git2::Repository, prefix: &str) -> Vec<git2::Oid> {
    let mut out = Vec::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            if !r.name_bytes().starts_with(prefix.as_bytes()) {
                continue;
            }
            if let Some(id) = r
                .target()
                .or_else(|| r.resolve().ok().and_then(|t| t.target()))
            {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_formats() {
        let z = "0".repeat(40);
        let a = "a".repeat(40);
        let r = parse_receive(&format!("{z} {a} refs/heads/main\n\n")).unwrap();
        assert_eq!(r[0].old, None);
        assert_eq!(r[0].new, Some(git2::Oid::from_str(&a).unwrap()));
        let p = parse_push(&format!("refs/heads/x {z} refs/heads/x {a}\n")).unwrap();
        assert_eq!(p[0].new, None);
        assert!(parse_receive("nonsense\n").is_err());
    }
}
