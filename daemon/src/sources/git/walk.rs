//! The first pass: which blobs to scan, and who introduced each.
//!
//! Commits are collected from the roots (a depth-first walk that stops at commits already
//! known), ordered oldest first (parents before children; committer time breaks ties), and
//! each commit's tree is walked by object id, skipping every tree already visited. A blob seen
//! for the first time is attributed to the commit being walked: that commit introduced it,
//! since no commit before it in this order contains it. The cost is one read per unique tree
//! and per unique commit, not commits × files; what is kept is object ids and a `u32` per id.

use super::object::{self, EntryKind, TreeEntries};
use super::oid::{ObjectId, OidMap, OidSet};
use crate::scan::Scan;
use keyward_detectors::Match;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Map value: recorded by an earlier run (`--state`); never scanned again.
pub const KNOWN: u32 = u32::MAX;
/// Map value: reachable from outside `--range`/`--since`; not scanned, not recorded as scanned.
pub const BOUNDARY: u32 = u32::MAX - 1;

/// Where a blob (or a message) came from: what attribution names.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The commit that introduced it.
    Commit(ObjectId),
    /// An annotated tag that points straight at a tree (`root`) or a blob (`root` is `None`).
    Tag {
        /// The tag's name.
        name: String,
        /// The tagged tree.
        root: Option<ObjectId>,
    },
    /// A tree that no commit reaches (`--include-unreachable`).
    Tree(ObjectId),
    /// A blob that no tree reaches (`--include-unreachable`).
    Dangling,
}

/// A message (commit or tag) with findings in it.
pub struct MessageHit {
    /// The commit or tag.
    pub id: ObjectId,
    /// Whether `id` is a tag.
    pub is_tag: bool,
    /// The matches, relative to the message.
    pub matches: Vec<Match>,
}

/// One commit as the walk needs it.
struct Node {
    id: ObjectId,
    tree: ObjectId,
    parents: Vec<ObjectId>,
    time: i64,
}

/// Counters of the walk, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkCounts {
    /// Commits read.
    pub commits: u64,
    /// Trees read.
    pub trees: u64,
    /// Commit and tag messages scanned.
    pub messages: u64,
    /// Objects that could not be read (each reported).
    pub unreadable: u64,
    /// Blobs not read at all because their name says they are binary (see
    /// [`has_binary_extension`]).
    pub binary_by_name: u64,
}

/// File extensions of formats that are always binary (images, fonts, audio/video, compiled
/// code and libraries). Such blobs would be read in full only to fail the NUL-byte test, and in
/// real histories they are a large share of the bytes (vendored `.a`/`.lib` import libraries,
/// icons); the walk skips them unread unless `--scan-binary`. Archives (`.zip`, `.jar`, `.gz`)
/// are not on the list: they may be opened and scanned.
const BINARY_EXTENSIONS: &[&str] = &[
    "a", "lib", "o", "obj", "so", "dll", "dylib", "exe", "rlib", "wasm", "pyc", "class", "png",
    "jpg", "jpeg", "gif", "bmp", "ico", "icns", "webp", "tif", "tiff", "psd", "woff", "woff2",
    "ttf", "otf", "eot", "mp3", "mp4", "m4a", "wav", "ogg", "flac", "avi", "mov", "mkv", "webm",
];

/// Whether a tree entry's name ends in one of `BINARY_EXTENSIONS` (ASCII case-insensitive).
pub fn has_binary_extension(name: &[u8]) -> bool {
    let Some(dot) = memchr::memrchr(b'.', name) else {
        return false;
    };
    let ext = &name[dot + 1..];
    BINARY_EXTENSIONS
        .iter()
        .any(|e| e.as_bytes().eq_ignore_ascii_case(ext))
}

/// The state of the first pass.
pub struct Walk<'a> {
    odb: &'a git2::Odb<'a>,
    scan: &'a Scan,
    /// Commits seen (read this run, or known from the state).
    pub commits: OidSet,
    /// Trees seen → origin index (or [`KNOWN`]/[`BOUNDARY`]).
    pub trees: OidMap<u32>,
    /// Blobs seen → origin index (or [`KNOWN`]/[`BOUNDARY`]).
    pub blobs: OidMap<u32>,
    /// Origins; indexed by the `u32`s in `trees` and `blobs`.
    pub origins: Vec<Origin>,
    /// New blobs, in the order they were found.
    pub jobs: Vec<ObjectId>,
    /// Messages with findings.
    pub messages: Vec<MessageHit>,
    /// Submodules (path → last commit seen); listed, not followed.
    pub submodules: BTreeMap<String, ObjectId>,
    /// Objects that could not be read (reported once each).
    pub failed: OidSet,
    /// Commits of a shallow clone whose parents are not in the repository.
    pub shallow: OidSet,
    /// Counters.
    pub counts: WalkCounts,
    /// Skip blobs whose names say they are binary ([`has_binary_extension`]), unread.
    pub skip_binary_names: bool,
    /// Trees and blobs that the roots name directly (tags of trees and blobs).
    loose_roots: Vec<(ObjectId, String, git2::ObjectType)>,
    /// Where new blobs go as they are found, in batches, so reading and scanning overlap
    /// the walk.
    sink: Option<crossbeam_channel::Sender<Vec<ObjectId>>>,
    batch: Vec<ObjectId>,
}

/// New blobs are handed to the readers in batches of this many.
const BATCH: usize = 256;

impl<'a> Walk<'a> {
    /// A walk reading from `odb` and scanning messages with `scan`.
    pub fn new(odb: &'a git2::Odb<'a>, scan: &'a Scan) -> Walk<'a> {
        Walk {
            odb,
            scan,
            commits: OidSet::default(),
            trees: OidMap::default(),
            blobs: OidMap::default(),
            origins: Vec::new(),
            jobs: Vec::new(),
            messages: Vec::new(),
            submodules: BTreeMap::new(),
            failed: OidSet::default(),
            shallow: OidSet::default(),
            counts: WalkCounts::default(),
            skip_binary_names: false,
            loose_roots: Vec::new(),
            sink: None,
            batch: Vec::new(),
        }
    }

    /// Sends each new blob to `sink` (in batches) as it is found.
    pub fn send_to(&mut self, sink: crossbeam_channel::Sender<Vec<ObjectId>>) {
        self.sink = Some(sink);
    }

    /// Sends the last batch and closes the sink: the readers finish when they drain it.
    pub fn finish(&mut self) {
        self.flush();
        self.sink = None;
    }

    fn flush(&mut self) {
        if let Some(s) = self.sink.as_ref().filter(|_| !self.batch.is_empty()) {
            // A closed channel means the readers failed; their error is reported by them.
            let _ = s.send(std::mem::take(&mut self.batch));
        }
    }

    /// Queues a blob for reading with this origin (known blobs are not queued).
    pub fn add_job(&mut self, id: ObjectId, origin: Origin) {
        if !self.blobs.contains_key(&id) {
            let o = self.push_origin(origin);
            self.add_blob(id, o);
        }
    }

    /// Reads an object, reporting a failure once per id.
    fn read(&mut self, id: ObjectId, what: &str) -> Option<git2::OdbObject<'a>> {
        if self.failed.contains(&id) {
            return None;
        }
        match self.odb.read(id.to_git2()) {
            Ok(o) => Some(o),
            Err(e) => {
                self.failed.insert(id);
                self.counts.unreadable += 1;
                self.scan.error(&format!("{what} {id}"), &e.message());
                None
            }
        }
    }

    /// Walks everything reachable from `roots` that is not known yet: commits oldest first,
    /// then trees and blobs that tags name directly.
    pub fn walk_from(&mut self, roots: &[(ObjectId, String)]) {
        let nodes = self.collect(roots);
        let order = topo_order(&nodes);
        for i in order {
            let n = &nodes[i];
            let origin = self.push_origin(Origin::Commit(n.id));
            self.walk_tree(n.tree, origin);
        }
        for (id, name, kind) in std::mem::take(&mut self.loose_roots) {
            match kind {
                git2::ObjectType::Tree if !self.trees.contains_key(&id) => {
                    let origin = self.push_origin(Origin::Tag {
                        name,
                        root: Some(id),
                    });
                    self.walk_tree(id, origin);
                }
                git2::ObjectType::Blob if !self.blobs.contains_key(&id) => {
                    let origin = self.push_origin(Origin::Tag { name, root: None });
                    self.add_blob(id, origin);
                }
                _ => {}
            }
        }
    }

    /// Walks exactly these commits (a `--range`/`--since` selection, any order): commits
    /// outside the set are the boundary, and what their trees hold is not scanned.
    pub fn walk_selected(&mut self, ids: &[ObjectId]) {
        let mut nodes = Vec::with_capacity(ids.len());
        for &id in ids {
            if !self.commits.insert(id) {
                continue;
            }
            if let Some(n) = self.read_commit(id) {
                nodes.push(n);
            }
        }
        let inside: OidSet = nodes.iter().map(|n| n.id).collect();
        let mut boundary = OidSet::default();
        for n in &nodes {
            for p in &n.parents {
                if !inside.contains(p) && !self.shallow.contains(&n.id) {
                    boundary.insert(*p);
                }
            }
        }
        for b in boundary {
            if let Some(obj) = self.read(b, "commit") {
                match object::parse_commit(obj.data()) {
                    Ok(c) => self.walk_tree(c.tree, BOUNDARY),
                    Err(e) => self.scan.error(&format!("commit {b}"), &e),
                }
            }
        }
        for i in topo_order(&nodes) {
            let n = &nodes[i];
            let origin = self.push_origin(Origin::Commit(n.id));
            self.walk_tree(n.tree, origin);
        }
    }

    /// Adds the objects no ref reaches (`--include-unreachable`): every object in the
    /// database that the walk has not seen.
    pub fn walk_unreachable(&mut self) -> u64 {
        let mut ids = Vec::new();
        if let Err(e) = self.odb.foreach(|oid| {
            ids.push(ObjectId::from_git2(*oid));
            true
        }) {
            self.scan
                .error("object database listing", &e.message().to_owned());
        }
        let mut roots = Vec::new();
        let mut trees = Vec::new();
        let mut blobs = Vec::new();
        for id in ids {
            if self.commits.contains(&id)
                || self.trees.contains_key(&id)
                || self.blobs.contains_key(&id)
                || self.failed.contains(&id)
            {
                continue;
            }
            match self.odb.read_header(id.to_git2()) {
                Ok((_, git2::ObjectType::Commit | git2::ObjectType::Tag)) => {
                    roots.push((id, format!("unreachable {id}")));
                }
                Ok((_, git2::ObjectType::Tree)) => trees.push(id),
                Ok((_, git2::ObjectType::Blob)) => blobs.push(id),
                Ok(_) => {}
                Err(e) => {
                    self.failed.insert(id);
                    self.counts.unreadable += 1;
                    self.scan.error(&format!("object {id}"), &e.message());
                }
            }
        }
        let unreachable_commits = roots.len() as u64;
        let before = self.jobs.len();
        self.walk_from(&roots);
        // Trees of unreachable commits were walked above; what is left hangs on nothing.
        trees.sort_unstable();
        for t in trees {
            if !self.trees.contains_key(&t) {
                let origin = self.push_origin(Origin::Tree(t));
                self.walk_tree(t, origin);
            }
        }
        let dangling = self.push_origin(Origin::Dangling);
        blobs.sort_unstable();
        for b in blobs {
            self.add_blob(b, dangling);
        }
        tracing::info!(
            commits = unreachable_commits,
            blobs = self.jobs.len() - before,
            "Unreachable objects added."
        );
        unreachable_commits
    }

    fn push_origin(&mut self, o: Origin) -> u32 {
        self.origins.push(o);
        (self.origins.len() - 1) as u32
    }

    fn add_blob(&mut self, id: ObjectId, origin: u32) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.blobs.entry(id) {
            v.insert(origin);
            if origin != BOUNDARY {
                self.jobs.push(id);
                if self.sink.is_some() {
                    self.batch.push(id);
                    if self.batch.len() >= BATCH {
                        self.flush();
                    }
                }
            }
        }
    }

    /// Depth-first collection of the commits reachable from `roots` and not seen yet. Tags are
    /// peeled (their messages scanned); tagged trees and blobs are kept for later.
    fn collect(&mut self, roots: &[(ObjectId, String)]) -> Vec<Node> {
        let mut nodes = Vec::new();
        let mut stack: Vec<(ObjectId, Option<String>)> = roots
            .iter()
            .rev()
            .map(|(id, n)| (*id, Some(n.clone())))
            .collect();
        while let Some((id, label)) = stack.pop() {
            if self.commits.contains(&id) || self.failed.contains(&id) {
                continue;
            }
            let Some(obj) = self.read(id, "object") else {
                continue;
            };
            match obj.kind() {
                git2::ObjectType::Commit => {
                    self.commits.insert(id);
                    if let Some(n) = self.parse_commit_obj(id, obj.data()) {
                        if !self.shallow.contains(&id) {
                            for p in n.parents.iter().rev() {
                                if !self.commits.contains(p) {
                                    stack.push((*p, None));
                                }
                            }
                        }
                        nodes.push(n);
                    }
                }
                git2::ObjectType::Tag => {
                    // Tags are few; they share the commits' "seen" set so a tag is read once.
                    self.commits.insert(id);
                    match object::parse_tag(obj.data()) {
                        Ok(t) => {
                            self.scan_message(id, true, t.message);
                            let name = String::from_utf8_lossy(t.name).into_owned();
                            stack.push((t.target, Some(name)));
                        }
                        Err(e) => {
                            self.counts.unreadable += 1;
                            self.scan.error(&format!("tag {id}"), &e);
                        }
                    }
                }
                kind @ (git2::ObjectType::Tree | git2::ObjectType::Blob) => {
                    self.loose_roots.push((id, label.unwrap_or_default(), kind));
                }
                _ => {}
            }
        }
        nodes
    }

    /// Reads and parses one commit (marking it seen is the caller's job).
    fn read_commit(&mut self, id: ObjectId) -> Option<Node> {
        let obj = self.read(id, "commit")?;
        if obj.kind() != git2::ObjectType::Commit {
            self.scan.error(&format!("commit {id}"), &"not a commit");
            return None;
        }
        self.parse_commit_obj(id, obj.data())
    }

    fn parse_commit_obj(&mut self, id: ObjectId, data: &[u8]) -> Option<Node> {
        match object::parse_commit(data) {
            Ok(c) => {
                self.counts.commits += 1;
                self.scan_message(id, false, c.message);
                Some(Node {
                    id,
                    tree: c.tree,
                    parents: c.parents,
                    time: c.commit_time,
                })
            }
            Err(e) => {
                self.failed.insert(id);
                self.counts.unreadable += 1;
                self.scan.error(&format!("commit {id}"), &e);
                None
            }
        }
    }

    /// Scans a commit or tag message; hits are kept for attribution at the end.
    fn scan_message(&mut self, id: ObjectId, is_tag: bool, message: &[u8]) {
        self.counts.messages += 1;
        let matches: Vec<Match> = self.scan.matches(message);
        if !matches.is_empty() {
            self.messages.push(MessageHit {
                id,
                is_tag,
                matches,
            });
        }
    }

    /// Walks the tree `root` by object id, skipping trees seen before; new trees and blobs are
    /// attributed to `origin`.
    pub fn walk_tree(&mut self, root: ObjectId, origin: u32) {
        let mut stack: Vec<(ObjectId, String)> = vec![(root, String::new())];
        while let Some((id, prefix)) = stack.pop() {
            if self.trees.contains_key(&id) {
                continue;
            }
            let Some(obj) = self.read(id, "tree") else {
                continue;
            };
            if obj.kind() != git2::ObjectType::Tree {
                self.failed.insert(id);
                self.counts.unreadable += 1;
                self.scan.error(&format!("tree {id}"), &"not a tree");
                continue;
            }
            self.counts.trees += 1;
            self.trees.insert(id, origin);
            for entry in TreeEntries::new(obj.data()) {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        self.counts.unreadable += 1;
                        self.scan.error(&format!("tree {id}"), &e);
                        break;
                    }
                };
                match entry.kind {
                    EntryKind::Tree => {
                        if !self.trees.contains_key(&entry.id) {
                            let mut path = prefix.clone();
                            path.push_str(&String::from_utf8_lossy(entry.name));
                            path.push('/');
                            stack.push((entry.id, path));
                        }
                    }
                    EntryKind::Blob
                        if self.skip_binary_names && has_binary_extension(entry.name) =>
                    {
                        if origin != BOUNDARY && !self.blobs.contains_key(&entry.id) {
                            self.counts.binary_by_name += 1;
                        }
                        self.blobs.entry(entry.id).or_insert(origin);
                    }
                    EntryKind::Blob => self.add_blob(entry.id, origin),
                    EntryKind::Submodule => {
                        if origin != BOUNDARY {
                            let path = format!("{prefix}{}", String::from_utf8_lossy(entry.name));
                            self.submodules.insert(path, entry.id);
                        }
                    }
                }
            }
        }
    }
}

/// Oldest first: every commit after its parents (those in `nodes`), ties broken by committer
/// time, then by the order collected (Kahn's algorithm with a min-heap).
fn topo_order(nodes: &[Node]) -> Vec<usize> {
    let index: OidMap<u32> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id, i as u32))
        .collect();
    let mut pending = vec![0u32; nodes.len()];
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for p in &n.parents {
            if let Some(&pi) = index.get(p) {
                pending[i] += 1;
                children[pi as usize].push(i as u32);
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<(i64, u32)>> = pending
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| Reverse((nodes[i].time, i as u32)))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(i as usize);
        for &c in &children[i as usize] {
            pending[c as usize] -= 1;
            if pending[c as usize] == 0 {
                ready.push(Reverse((nodes[c as usize].time, c)));
            }
        }
    }
    // A cycle cannot happen in a valid repository; a corrupt one still gets every commit.
    if order.len() < nodes.len() {
        let mut done = vec![false; nodes.len()];
        for &i in &order {
            done[i] = true;
        }
        order.extend((0..nodes.len()).filter(|&i| !done[i]));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8, parents: &[u8], time: i64) -> Node {
        Node {
            id: ObjectId([n; 20]),
            tree: ObjectId::ZERO,
            parents: parents.iter().map(|&p| ObjectId([p; 20])).collect(),
            time,
        }
    }

    #[test]
    fn parents_come_first() {
        // 3 is a merge of 1 and 2; 2's clock is behind its parent's.
        let nodes = vec![
            node(3, &[1, 2], 30),
            node(2, &[0], 5),
            node(1, &[0], 10),
            node(0, &[], 20),
        ];
        let order: Vec<u8> = topo_order(&nodes)
            .into_iter()
            .map(|i| nodes[i].id.0[0])
            .collect();
        assert_eq!(order, vec![0, 2, 1, 3]);
    }
}
