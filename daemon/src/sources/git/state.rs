//! `--state FILE`: what earlier runs scanned, so the next run reads only new objects.
//!
//! The file holds object ids only (20 bytes each) plus, for the few blobs with findings, their
//! fingerprints (so `in_head` is right for secrets found in an earlier run). It is tied to a
//! settings hash (rules, options, keyward version): when those change, the state is ignored
//! and everything is scanned again.
//!
//! Layout (little-endian): `KWGITST1`, settings `u64`, then four id lists (`u64` count, ids):
//! commits, trees, blobs, then pending blobs (missing or unreadable: tried again next run) as
//! (blob, introducing commit or zeros) pairs, then the blobs with findings (`u64` count; each:
//! id, `u32` count, fingerprints as `u8` length + bytes).

use super::oid::{ObjectId, OidMap, OidSet};
use anyhow::{Context, Result, bail};
use keyward_detectors::Fingerprint;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"KWGITST1";

/// What earlier runs scanned.
#[derive(Debug, Default)]
pub struct State {
    /// Settings hash the ids were scanned with.
    pub settings: u64,
    /// Commits whose history, trees and blobs were walked.
    pub commits: OidSet,
    /// Trees walked (every blob under them is in `blobs` or `pending`).
    pub trees: OidSet,
    /// Blobs scanned (or skipped for good: binary, too large, LFS).
    pub blobs: OidSet,
    /// Blobs that could not be read, with the commit that introduced them.
    pub pending: OidMap<ObjectId>,
    /// Fingerprints found in scanned blobs (only blobs with findings).
    pub found: OidMap<Vec<Fingerprint>>,
}

impl State {
    /// Loads `path`; `Ok(None)` if it does not exist or was written with other settings.
    ///
    /// # Errors
    /// Unreadable or malformed file.
    pub fn load(path: &Path, settings: u64) -> Result<Option<State>> {
        let file = match fs_err::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut r = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .with_context(|| format!("{}: not a keyward git state file", path.display()))?;
        if &magic != MAGIC {
            bail!("{}: not a keyward git state file", path.display());
        }
        let mut s = State {
            settings: read_u64(&mut r)?,
            ..State::default()
        };
        if s.settings != settings {
            tracing::info!(
                state = %path.display(),
                "Rules or options changed since the state was written; scanning everything."
            );
            return Ok(None);
        }
        read_body(&mut r, &mut s)
            .with_context(|| format!("{}: truncated or damaged state file", path.display()))?;
        Ok(Some(s))
    }

    /// Writes the state to `path` (through a temporary file and a rename, so a crash leaves
    /// the old state).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        {
            let mut w = BufWriter::with_capacity(1 << 20, fs_err::File::create(&tmp)?);
            w.write_all(MAGIC)?;
            w.write_all(&self.settings.to_le_bytes())?;
            for set in [&self.commits, &self.trees, &self.blobs] {
                w.write_all(&(set.len() as u64).to_le_bytes())?;
                for id in set {
                    w.write_all(&id.0)?;
                }
            }
            w.write_all(&(self.pending.len() as u64).to_le_bytes())?;
            for (blob, commit) in &self.pending {
                w.write_all(&blob.0)?;
                w.write_all(&commit.0)?;
            }
            w.write_all(&(self.found.len() as u64).to_le_bytes())?;
            for (blob, fps) in &self.found {
                w.write_all(&blob.0)?;
                w.write_all(&(fps.len() as u32).to_le_bytes())?;
                for fp in fps {
                    let s = fp.as_str().as_bytes();
                    w.write_all(&[s.len() as u8])?;
                    w.write_all(s)?;
                }
            }
            w.flush()
                .with_context(|| format!("writing {}", tmp.display()))?;
        }
        fs_err::rename(&tmp, path)?;
        Ok(())
    }
}

fn read_body(r: &mut impl Read, s: &mut State) -> Result<()> {
    s.commits = read_ids(r)?;
    s.trees = read_ids(r)?;
    s.blobs = read_ids(r)?;
    let n = read_u64(r)?;
    for _ in 0..n {
        let blob = read_id(r)?;
        let commit = read_id(r)?;
        s.pending.insert(blob, commit);
    }
    let n = read_u64(r)?;
    for _ in 0..n {
        let blob = read_id(r)?;
        let mut count = [0u8; 4];
        r.read_exact(&mut count)?;
        let mut fps = Vec::new();
        for _ in 0..u32::from_le_bytes(count) {
            let mut len = [0u8; 1];
            r.read_exact(&mut len)?;
            let mut buf = vec![0u8; usize::from(len[0])];
            r.read_exact(&mut buf)?;
            let text = String::from_utf8(buf).context("fingerprint")?;
            fps.push(Fingerprint::parse(&text).context("fingerprint")?);
        }
        s.found.insert(blob, fps);
    }
    Ok(())
}

fn read_u64(r: &mut impl Read) -> Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_id(r: &mut impl Read) -> Result<ObjectId> {
    let mut b = [0u8; 20];
    r.read_exact(&mut b)?;
    Ok(ObjectId(b))
}

fn read_ids(r: &mut impl Read) -> Result<OidSet> {
    let n = read_u64(r)?;
    // Do not trust the count for the allocation: a damaged file must not ask for terabytes.
    let mut set = OidSet::with_capacity_and_hasher(
        (n as usize).min(1 << 24),
        std::hash::BuildHasherDefault::default(),
    );
    for _ in 0..n {
        set.insert(read_id(r)?);
    }
    Ok(set)
}

/// The settings hash of a scan: what decides whether a blob scanned before would give the same
/// findings now (the version, the rules, decoding, validation and the blob filters).
pub fn scan_settings(
    rules: &keyward_detectors::RuleSet,
    decode: bool,
    keep_failed: bool,
    scan_binary: bool,
    max_file_size: u64,
) -> u64 {
    let mut parts: Vec<Vec<u8>> = vec![
        env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        format!("decode={decode} keep_failed={keep_failed}").into_bytes(),
        format!("binary={scan_binary} max={max_file_size}").into_bytes(),
    ];
    for r in rules.rules() {
        parts.push(
            format!(
                "{}\u{1}{}\u{1}{}\u{1}{:?}\u{1}{}",
                r.id().as_str(),
                r.pattern(),
                r.keywords().join("\u{2}"),
                r.validator(),
                r.severity().as_str()
            )
            .into_bytes(),
        );
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    settings_hash(&refs)
}

/// FNV-1a over what decides a scan's result, so a state written under other rules or options
/// is not trusted.
pub fn settings_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut s = State {
            settings: 7,
            ..State::default()
        };
        s.commits.insert(ObjectId([1; 20]));
        s.trees.insert(ObjectId([2; 20]));
        s.blobs.insert(ObjectId([3; 20]));
        s.pending.insert(ObjectId([4; 20]), ObjectId([1; 20]));
        s.found.insert(
            ObjectId([3; 20]),
            vec![Fingerprint::of("github-pat", b"ghp_x")],
        );
        s.save(&path).unwrap();
        let back = State::load(&path, 7).unwrap().unwrap();
        assert_eq!(back.commits, s.commits);
        assert_eq!(back.trees, s.trees);
        assert_eq!(back.blobs, s.blobs);
        assert_eq!(back.pending, s.pending);
        assert_eq!(back.found, s.found);
        assert!(State::load(&path, 8).unwrap().is_none());
        assert!(State::load(&dir.path().join("none"), 7).unwrap().is_none());
    }
}
