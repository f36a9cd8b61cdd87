//! Where the walk starts: every ref (branches, tags, remote-tracking refs, notes), `HEAD`, and
//! every stash entry (older stashes live only in the reflog of `refs/stash`).

use super::oid::ObjectId;
use crate::scan::Scan;

/// The starting points: (object id, ref name). Unreadable refs are reported and skipped.
pub fn roots(repo: &git2::Repository, scan: &Scan) -> Vec<(ObjectId, String)> {
    let mut roots = Vec::new();
    match repo.references() {
        Ok(refs) => {
            for r in refs {
                match r {
                    Ok(r) => {
                        let name = String::from_utf8_lossy(r.name_bytes()).into_owned();
                        match r
                            .target()
                            .or_else(|| r.resolve().ok().and_then(|t| t.target()))
                        {
                            Some(id) => roots.push((ObjectId::from_git2(id), name)),
                            None => scan.error(&format!("ref {name}"), &"does not resolve"),
                        }
                    }
                    Err(e) => scan.error("a ref", &e.message()),
                }
            }
        }
        Err(e) => scan.error("refs", &e.message()),
    }
    // A detached HEAD is not under refs/.
    if let Some(id) = repo.head().ok().and_then(|h| h.target()) {
        roots.push((ObjectId::from_git2(id), "HEAD".to_owned()));
    }
    if let Ok(log) = repo.reflog("refs/stash") {
        for (i, entry) in log.iter().enumerate() {
            roots.push((
                ObjectId::from_git2(entry.id_new()),
                format!("stash@{{{i}}}"),
            ));
        }
    }
    roots
}

/// The tree at the tip of the default branch (what `HEAD` names), if there is one.
pub fn head_tree(repo: &git2::Repository) -> Option<ObjectId> {
    let commit = repo.head().ok()?.peel_to_commit().ok()?;
    Some(ObjectId::from_git2(commit.tree_id()))
}
