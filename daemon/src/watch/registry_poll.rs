//! A registry repository, polled: its tags and the manifest digest each points at, and what
//! changed between two polls.
//!
//! Blocking (ureq, through [`crate::sources::image::registry::Repository`], which scans use
//! too): the daemon calls [`poll`] in `spawn_blocking`. One poll is a `tags/list` (every page)
//! and a manifest `HEAD` per tag; a tag deleted between the two is left out.

use crate::sources::image::registry::{Credentials, Repository};
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// A registry repository's tags and the manifest digest (`sha256:…`) each points at.
///
/// `registry` is `host[:port]`, `repository` `team/app`; `insecure_http` speaks plain HTTP.
/// Anonymous unless `auth` is given (basic, or exchanged for a bearer token when the registry
/// asks for one).
///
/// # Errors
/// The registry cannot be reached, refuses the credentials, has no such repository, or
/// answers a manifest request with an error other than 404.
pub fn poll(
    registry: &str,
    repository: &str,
    insecure_http: bool,
    auth: Option<&Credentials>,
) -> Result<BTreeMap<String, String>> {
    let repo = Repository::new(registry, repository, insecure_http, auth.cloned());
    let context = || format!("polling {registry}/{repository}");
    let tags = repo.tags().with_context(context)?;
    let mut out = BTreeMap::new();
    for tag in tags {
        match repo.manifest_digest(&tag).with_context(context)? {
            Some(digest) => {
                out.insert(tag, digest.as_str().to_owned());
            }
            None => tracing::debug!(
                registry,
                repository,
                tag,
                "Tag listed but deleted before its manifest was read."
            ),
        }
    }
    Ok(out)
}

/// Tags that are new or whose digest changed since `before`, with their digest now, in tag
/// order. Tags gone since `before` are not listed: there is nothing new to scan.
pub fn changed(
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    now.iter()
        .filter(|(tag, digest)| before.get(*tag) != Some(*digest))
        .map(|(tag, digest)| (tag.clone(), digest.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lists_new_and_moved_tags() {
        let map = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(t, d)| ((*t).to_owned(), (*d).to_owned()))
                .collect()
        };
        let before = map(&[("a", "sha256:1"), ("b", "sha256:2"), ("gone", "sha256:3")]);
        let now = map(&[("a", "sha256:1"), ("b", "sha256:9"), ("c", "sha256:4")]);
        assert_eq!(
            changed(&before, &now),
            [
                ("b".to_owned(), "sha256:9".to_owned()),
                ("c".to_owned(), "sha256:4".to_owned())
            ]
        );
        assert_eq!(changed(&now, &now), []);
        assert_eq!(changed(&BTreeMap::new(), &before).len(), 3);
    }
}
