//! One layer: a tar stream (gzip, zstd or plain) read once, never written to disk. While it
//! streams, both digests are computed (the blob's, and the uncompressed tar's, the diff_id),
//! every file is scanned and the layer's changes (files written, whiteouts, opaque dirs) are
//! noted so that [`super::assemble`] can tell which findings a later layer deleted.
//!
//! One thread reads, decompresses and parses the tar; `threads` workers scan the entries it
//! hands them over a bounded channel (so memory is bounded by the channel, not the layer).
//! Entries larger than [`READ_MAX`] are scanned in chunks with overlap on the reading thread.

use super::digest::{Digest, HashingReader};
use crate::scan::Scan;
use crate::sources::archive::{self, ArchiveLimits};
use crate::sources::dir::is_binary;
use keyward_detectors::{Match, StreamScanner};
use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// Entries up to this size are read whole and scanned by a worker; larger ones are streamed.
pub const READ_MAX: u64 = 8 << 20;
/// Jobs queued between the reading thread and the workers (each at most [`READ_MAX`], or an
/// archive of at most `max_member_size`).
const QUEUE: usize = 8;

/// How layers are scanned.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Archives found in layers.
    pub archives: ArchiveLimits,
    /// Files larger than this are skipped (counted, reported at debug level).
    pub max_file_size: u64,
    /// Scan files that look binary.
    pub scan_binary: bool,
    /// Scanning workers.
    pub threads: usize,
}

/// What a layer changes in the file system, for working out what later layers hide.
#[derive(Debug, Default)]
pub struct Changes {
    /// Every path the layer writes (file, dir, link), with the position of its last entry and
    /// whether that entry is a directory.
    entries: HashMap<String, (u32, bool)>,
    /// Paths deleted by `.wh.NAME` files.
    whiteouts: HashSet<String>,
    /// Directories made opaque by `.wh..wh..opq` (everything below them from lower layers is
    /// gone).
    opaque: HashSet<String>,
}

impl Changes {
    /// Whether this layer, applied on top, hides `path` written by a lower layer: it writes
    /// `path` again (any type), deletes it or an ancestor, makes an ancestor opaque, or replaces
    /// an ancestor directory with a non-directory.
    pub fn hides(&self, path: &str) -> bool {
        if self.entries.contains_key(path) || self.whiteouts.contains(path) {
            return true;
        }
        ancestors(path).any(|a| {
            self.whiteouts.contains(a)
                || self.opaque.contains(a)
                || self.entries.get(a).is_some_and(|&(_, dir)| !dir)
        })
    }

    /// Whether the entry at `ordinal` for `path` is overwritten by a later entry of the same
    /// layer (a tar may hold a path twice; the last one wins).
    pub fn overwritten(&self, path: &str, ordinal: u32) -> bool {
        self.entries
            .get(path)
            .is_some_and(|&(last, _)| last > ordinal)
    }

    /// Number of paths written.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the layer writes nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `a/b/c` → `a/b`, `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.char_indices()
        .filter(|&(_, c)| c == '/')
        .map(|(i, _)| &path[..i])
}

/// Matches in one file of a layer.
#[derive(Debug, Clone)]
pub struct FileMatches {
    /// The path in the layer (for an archive member, of the archive).
    pub path: String,
    /// The path as reported (`app.jar!config/app.properties` for a member).
    pub shown: String,
    /// Position of the file's entry in the layer tar.
    pub ordinal: u32,
    /// What was found (suppression by path and fingerprint is applied when recording).
    pub matches: Vec<Match>,
}

/// The result of scanning one layer, independent of any image it belongs to; shared by all
/// images that hold the layer.
#[derive(Debug, Default)]
pub struct LayerScan {
    /// The digests (blob, diff_id) and sizes (blob, uncompressed), when the stream was read to
    /// its end; `None` when it broke off (the error was reported).
    pub digests: Option<LayerDigests>,
    /// File-system changes.
    pub changes: Changes,
    /// Files with matches.
    pub found: Vec<FileMatches>,
}

/// Digests and sizes of a layer read to its end.
#[derive(Debug, Clone)]
pub struct LayerDigests {
    /// Digest of the blob as stored (compressed).
    pub blob: Digest,
    /// Size of the blob.
    pub blob_size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub size: u64,
}

/// Scans the layer blob `input`; `what` names the layer in error messages. Never fails: a
/// broken stream or entry is reported on `scan` and what was read so far is kept.
pub fn scan_layer(scan: &Scan, input: impl Read, what: &str, opts: &LayerOptions) -> LayerScan {
    scan.stats
        .layers
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let found = Mutex::new(Vec::new());
    let mut changes = Changes::default();
    let digests = std::thread::scope(|s| {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        for _ in 0..opts.threads.max(1) {
            let rx = rx.clone();
            let found = &found;
            s.spawn(move || {
                for job in rx {
                    let mut out = Vec::new();
                    scan_file(scan, &job, opts, &mut out);
                    if !out.is_empty() {
                        found
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .extend(out);
                    }
                }
            });
        }
        drop(rx);
        let r = read_layer(scan, input, what, opts, &tx, &mut changes, &found);
        drop(tx);
        match r {
            Ok(d) => Some(d),
            Err(e) => {
                scan.error(what, &e);
                None
            }
        }
    });
    let mut found = found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    found.sort_by(|a: &FileMatches, b| (a.ordinal, &a.shown).cmp(&(b.ordinal, &b.shown)));
    LayerScan {
        digests,
        changes,
        found,
    }
}

/// A file read whole, for a worker.
struct Job {
    path: String,
    ordinal: u32,
    data: Vec<u8>,
}

fn read_layer(
    scan: &Scan,
    input: impl Read,
    what: &str,
    opts: &LayerOptions,
    tx: &crossbeam_channel::Sender<Job>,
    changes: &mut Changes,
    found: &Mutex<Vec<FileMatches>>,
) -> std::io::Result<LayerDigests> {
    let mut raw = HashingReader::new(input);
    let mut buffered = BufReader::with_capacity(256 << 10, &mut raw);
    let head = buffered.fill_buf()?;
    let decoder: Box<dyn Read + '_> = match archive::kind(head) {
        Some(archive::ArchiveKind::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Some(archive::ArchiveKind::Zstd) => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
        }
        _ => Box::new(buffered),
    };
    let mut plain = HashingReader::new(decoder);
    {
        let mut tar = tar::Archive::new(&mut plain);
        for (ordinal, entry) in tar.entries()?.enumerate() {
            let ordinal = ordinal as u32;
            let entry = entry.map_err(|e| annotate(e, "reading the layer tar"))?;
            layer_entry(scan, entry, ordinal, what, opts, tx, changes, found)?;
        }
    }
    let (diff_id, size) = plain.finish()?;
    let (blob, blob_size) = raw.finish()?;
    Ok(LayerDigests {
        blob,
        blob_size,
        diff_id,
        size,
    })
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(|e| annotate(e, …))`
fn annotate(e: std::io::Error, doing: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{doing}: {e}"))
}

/// A layer path without `./`, leading or trailing `/`; `Err` with the reason for a path that
/// escapes the root (`..`) or was absolute (reported, then scanned under the cleaned path).
fn normalize(raw: &str) -> (String, Option<&'static str>) {
    let mut problem = None;
    if raw.starts_with('/') {
        problem = Some("absolute path in a layer tar");
    }
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                problem = Some("`..` in a layer tar path");
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (parts.join("/"), problem)
}

#[allow(clippy::too_many_arguments)]
fn layer_entry(
    scan: &Scan,
    mut entry: tar::Entry<'_, impl Read>,
    ordinal: u32,
    what: &str,
    opts: &LayerOptions,
    tx: &crossbeam_channel::Sender<Job>,
    changes: &mut Changes,
    found: &Mutex<Vec<FileMatches>>,
) -> std::io::Result<()> {
    let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let (path, problem) = normalize(&raw);
    if let Some(p) = problem {
        scan.error(&format!("{what}: {raw}"), &p);
    }
    if path.is_empty() {
        return Ok(());
    }
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
    if let Some(hidden) = name.strip_prefix(".wh.") {
        if hidden == ".wh..opq" {
            changes.opaque.insert(dir.to_owned());
        } else if !hidden.starts_with(".wh.") {
            let target = if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            };
            changes.whiteouts.insert(target);
        }
        return Ok(());
    }
    let kind = entry.header().entry_type();
    changes
        .entries
        .insert(path.clone(), (ordinal, kind.is_dir()));
    // Links are never followed (so a symlink loop cannot hang the scan); a hard link's content
    // is scanned at its target's own entry.
    if !kind.is_file() {
        return Ok(());
    }
    let size = entry.size();
    if size > opts.max_file_size {
        scan.skipped(&format!("{what}: {path}"), "larger than --max-file-size");
        return Ok(());
    }
    let mut head = vec![0u8; archive::SNIFF_LEN.min(size as usize)];
    entry
        .read_exact(&mut head)
        .map_err(|e| annotate(e, &format!("reading {path}")))?;
    let is_archive = opts.archives.max_depth > 0 && archive::kind(&head).is_some();
    let whole = size <= READ_MAX || (is_archive && size <= opts.archives.max_member_size);
    if whole {
        let mut data = Vec::with_capacity(size as usize);
        data.extend_from_slice(&head);
        entry
            .read_to_end(&mut data)
            .map_err(|e| annotate(e, &format!("reading {path}")))?;
        // The workers are alive while the channel is; a send error means they all panicked.
        tx.send(Job {
            path,
            ordinal,
            data,
        })
        .map_err(|_| std::io::Error::other("layer scan workers stopped"))?;
        return Ok(());
    }
    if is_archive {
        scan.skipped(
            &format!("{what}: {path}"),
            "archive larger than the archive size limit",
        );
    }
    if !opts.scan_binary && (is_binary(&head) || is_archive) {
        scan.skipped(&format!("{what}: {path}"), "binary");
        return Ok(());
    }
    let matches = stream_matches(scan, std::io::Cursor::new(head).chain(&mut entry))
        .map_err(|e| annotate(e, &format!("reading {path}")))?;
    if !matches.is_empty() {
        found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(FileMatches {
                shown: path.clone(),
                path,
                ordinal,
                matches,
            });
    }
    Ok(())
}

/// A worker's part: open an archive, or skip a binary, or scan.
fn scan_file(scan: &Scan, job: &Job, opts: &LayerOptions, out: &mut Vec<FileMatches>) {
    let mut v = ArchiveVisitor {
        scan,
        job,
        scan_binary: opts.scan_binary,
        out,
    };
    if archive::walk(&job.path, &job.data, &opts.archives, &mut v) {
        return;
    }
    if !opts.scan_binary && is_binary(&job.data) {
        scan.skipped(&job.path, "binary");
        return;
    }
    let matches = matches(scan, &job.data);
    if !matches.is_empty() {
        out.push(FileMatches {
            path: job.path.clone(),
            shown: job.path.clone(),
            ordinal: job.ordinal,
            matches,
        });
    }
}

struct ArchiveVisitor<'a> {
    scan: &'a Scan,
    job: &'a Job,
    scan_binary: bool,
    out: &'a mut Vec<FileMatches>,
}

impl archive::Visitor for ArchiveVisitor<'_> {
    fn file(&mut self, path: &str, data: &[u8]) {
        if !self.scan_binary && is_binary(data) {
            self.scan.skipped(path, "binary");
            return;
        }
        let matches = matches(self.scan, data);
        if !matches.is_empty() {
            self.out.push(FileMatches {
                path: self.job.path.clone(),
                shown: path.to_owned(),
                ordinal: self.job.ordinal,
                matches,
            });
        }
    }
    fn error(&mut self, path: &str, err: &dyn Display) {
        self.scan.error(path, err);
    }
    fn skipped(&mut self, path: &str, why: &str) {
        self.scan.skipped(path, why);
    }
}

/// The engine's matches in `data`, minus those with a `keyward:allow` comment; counts the
/// file and its bytes.
pub fn matches(scan: &Scan, data: &[u8]) -> Vec<Match> {
    scan.stats.files.fetch_add(1, Relaxed);
    scan.stats.bytes.fetch_add(data.len() as u64, Relaxed);
    scan.matches(data)
}

/// [`matches`] over a stream, in chunks with overlap (constant memory).
fn stream_matches(scan: &Scan, mut r: impl Read) -> std::io::Result<Vec<Match>> {
    scan.stats.files.fetch_add(1, Relaxed);
    let mut stream =
        StreamScanner::new(scan.scanner()).with_filter(|buf, at| !scan.allowed_at(buf, at));
    let mut buf = vec![0u8; 256 << 10];
    let mut out = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        scan.stats.bytes.fetch_add(n as u64, Relaxed);
        stream.push(&buf[..n], &mut out);
    }
    stream.finish(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_hide() {
        let mut c = Changes::default();
        c.whiteouts.insert("etc/key".into());
        c.whiteouts.insert("opt/app".into());
        c.opaque.insert("srv".into());
        c.entries.insert("var/x".into(), (1, false));
        c.entries.insert("lib".into(), (2, true));
        c.entries.insert("bin".into(), (3, false));
        assert!(c.hides("etc/key"));
        assert!(!c.hides("etc/key2"));
        assert!(c.hides("opt/app/conf/a.yml"));
        assert!(c.hides("srv/data/x"));
        assert!(!c.hides("srv"));
        assert!(c.hides("var/x"));
        assert!(!c.hides("lib/libc.so"));
        assert!(c.hides("bin/sh"));
        assert!(c.overwritten("var/x", 0));
        assert!(!c.overwritten("var/x", 1));
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize("./etc/passwd"), ("etc/passwd".into(), None));
        assert_eq!(normalize("etc/"), ("etc".into(), None));
        assert!(normalize("/etc/x").1.is_some());
        assert_eq!(normalize("a/../../etc/x").0, "etc/x");
        assert!(normalize("a/../../etc/x").1.is_some());
    }
}
