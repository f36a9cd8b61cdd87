//! Attribution: the commit, author, date, summary and path of a finding, and whether its
//! secret is still at the tip of the default branch.
//!
//! Paths are not kept during the walk (that would cost memory per blob); they are recovered
//! for the few blobs with findings, by walking the introducing commit's tree down only the
//! subtrees that were new in that commit, which is where its new blobs are.

use super::object::{self, EntryKind, TreeEntries};
use super::oid::{ObjectId, OidMap, OidSet};
use super::walk::Origin;
use crate::finding::Location;
use std::collections::HashMap;

/// What a finding says about a commit (or tag).
#[derive(Debug, Clone, Default)]
pub struct CommitMeta {
    /// Commit (or tag) id.
    pub id: Option<String>,
    /// `Name <email>`.
    pub author: Option<String>,
    /// Author date, RFC 3339.
    pub date: Option<String>,
    /// First line of the message.
    pub summary: Option<String>,
    /// Root tree (commits).
    pub tree: Option<ObjectId>,
}

/// Reads commit and tag metadata, once per object.
pub struct Attributor<'a> {
    odb: &'a git2::Odb<'a>,
    cache: OidMap<CommitMeta>,
}

impl<'a> Attributor<'a> {
    /// Reads from `odb`.
    pub fn new(odb: &'a git2::Odb<'a>) -> Attributor<'a> {
        Attributor {
            odb,
            cache: OidMap::default(),
        }
    }

    /// Metadata of a commit or annotated tag (empty fields if it cannot be read).
    pub fn meta(&mut self, id: ObjectId) -> CommitMeta {
        if let Some(m) = self.cache.get(&id) {
            return m.clone();
        }
        let mut meta = CommitMeta {
            id: Some(id.to_string()),
            ..CommitMeta::default()
        };
        if let Ok(obj) = self.odb.read(id.to_git2()) {
            let (sig, message, tree) = match obj.kind() {
                git2::ObjectType::Commit => match object::parse_commit(obj.data()) {
                    Ok(c) => (c.author, c.message, Some(c.tree)),
                    Err(_) => (&b""[..], &b""[..], None),
                },
                git2::ObjectType::Tag => match object::parse_tag(obj.data()) {
                    Ok(t) => (t.tagger, t.message, None),
                    Err(_) => (&b""[..], &b""[..], None),
                },
                _ => (&b""[..], &b""[..], None),
            };
            if !sig.is_empty() {
                meta.author = Some(object::signature_name(sig));
                meta.date = object::signature_time(sig).map(|(t, o)| object::rfc3339(t, o));
            }
            meta.summary = Some(object::summary(message));
            meta.tree = tree;
        }
        self.cache.insert(id, meta.clone());
        meta
    }

    /// The location of something `origin` introduced, at `path`.
    pub fn location(&mut self, origin: &Origin, path: Option<String>) -> Location {
        let mut loc = Location {
            source: crate::finding::SourceKind::Git,
            path,
            ..Location::default()
        };
        match origin {
            Origin::Commit(id) => {
                let m = self.meta(*id);
                loc.commit = m.id;
                loc.author = m.author;
                loc.date = m.date;
                loc.summary = m.summary;
            }
            Origin::Tag { name, .. } => loc.summary = Some(format!("tag {name}")),
            Origin::Tree(id) => loc.summary = Some(format!("unreachable tree {id}")),
            Origin::Dangling => loc.summary = Some("unreachable blob".to_owned()),
        }
        loc
    }

    /// The root tree whose new subtrees hold what `origin` introduced.
    pub fn root_of(&mut self, origin: &Origin) -> Option<ObjectId> {
        match origin {
            Origin::Commit(id) => self.meta(*id).tree,
            Origin::Tag { root, .. } => *root,
            Origin::Tree(id) => Some(*id),
            Origin::Dangling => None,
        }
    }

    /// Paths of `wanted` blobs under `root`, descending only into trees that `trees` says
    /// `origin` introduced. The first path found wins.
    pub fn paths(
        &self,
        root: ObjectId,
        origin: u32,
        trees: &OidMap<u32>,
        wanted: &OidSet,
    ) -> OidMap<String> {
        let mut found = OidMap::default();
        let mut stack = vec![(root, String::new())];
        while let Some((id, prefix)) = stack.pop() {
            if trees.get(&id) != Some(&origin) {
                continue;
            }
            let Ok(obj) = self.odb.read(id.to_git2()) else {
                continue;
            };
            for entry in TreeEntries::new(obj.data()).map_while(Result::ok) {
                let name = String::from_utf8_lossy(entry.name);
                match entry.kind {
                    EntryKind::Tree => stack.push((entry.id, format!("{prefix}{name}/"))),
                    EntryKind::Blob if wanted.contains(&entry.id) => {
                        found
                            .entry(entry.id)
                            .or_insert_with(|| format!("{prefix}{name}"));
                    }
                    _ => {}
                }
            }
            if found.len() == wanted.len() {
                break;
            }
        }
        found
    }
}

/// Every blob at the tip of the default branch, by path.
pub struct HeadIndex {
    /// Blob ids.
    pub blobs: OidSet,
    /// Path → blob id.
    pub by_path: HashMap<String, ObjectId>,
}

impl HeadIndex {
    /// Walks the whole tree `root` (all of it: this is a snapshot, not history).
    pub fn build(odb: &git2::Odb<'_>, root: ObjectId) -> HeadIndex {
        let mut index = HeadIndex {
            blobs: OidSet::default(),
            by_path: HashMap::new(),
        };
        let mut stack = vec![(root, String::new())];
        while let Some((id, prefix)) = stack.pop() {
            let Ok(obj) = odb.read(id.to_git2()) else {
                continue;
            };
            for entry in TreeEntries::new(obj.data()).map_while(Result::ok) {
                let name = String::from_utf8_lossy(entry.name);
                match entry.kind {
                    EntryKind::Tree => stack.push((entry.id, format!("{prefix}{name}/"))),
                    EntryKind::Blob => {
                        index.blobs.insert(entry.id);
                        index.by_path.insert(format!("{prefix}{name}"), entry.id);
                    }
                    EntryKind::Submodule => {}
                }
            }
        }
        index
    }
}
