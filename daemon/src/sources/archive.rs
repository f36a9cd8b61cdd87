//! Archives inside scanned files: zip (jar, war, ear, whl, apk …), tar, tar.gz/.tgz (npm
//! packages), tar.zst, and single gzip/zstd files — opened in memory, to a bounded depth, with
//! limits against decompression bombs. Every source uses it: a layer of an image, a directory,
//! a git blob. A member is named `outer.jar!inner/file`; nesting repeats the `!`.
//!
//! Detection is by content (magic bytes), not by file name, so a renamed jar is still opened.
//!
//! NOTE: archives are buffered in memory (a zip's central directory is at its end, so a zip
//! cannot be read in one pass). [`ArchiveLimits::max_member_size`] bounds each buffer; larger
//! archives and members are skipped and counted, never written to disk.

use std::fmt::Display;
use std::io::{Cursor, Read};

/// What may be unpacked, and how deep. Defaults in [`ArchiveLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// How many archive levels are opened: 1 opens an archive found in a file, 2 also the
    /// archives inside it, 0 opens none.
    pub max_depth: u32,
    /// Largest archive, and largest member, read into memory (uncompressed bytes).
    pub max_member_size: u64,
    /// Uncompressed bytes one top-level archive may expand to, all levels together.
    pub max_total_size: u64,
    /// Largest ratio of uncompressed to compressed size of a zip member over 1 MiB.
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            // jar in a war in a layer: 3 levels covers fat jars and their dependencies.
            max_depth: 3,
            // keeps peak memory near a few hundred MB even with a worker per core.
            max_member_size: 64 << 20,
            max_total_size: 1 << 30,
            // text and class files compress 5–20×; a 1000× member is a bomb.
            max_ratio: 200,
        }
    }
}

/// A kind of archive, recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// zip, jar, war, ear, whl, apk, nupkg.
    Zip,
    /// ustar/GNU/pax tar.
    Tar,
    /// gzip: a tar.gz/.tgz, or a single gzipped file.
    Gzip,
    /// zstd: a tar.zst, or a single compressed file.
    Zstd,
}

/// Bytes needed by [`kind`] to recognise a tar (its magic sits at offset 257).
pub const SNIFF_LEN: usize = 265;

/// The kind of archive `head` (the first bytes of a file, [`SNIFF_LEN`] are enough) starts.
pub fn kind(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if is_tar(head) {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// `ustar` at offset 257 (POSIX and GNU tar both put it there).
pub fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// What an archive walk hands back.
pub trait Visitor {
    /// A member that is not itself an archive (or is one past the depth limit): scan `data`.
    fn file(&mut self, path: &str, data: &[u8]);
    /// A member or archive that could not be read; the walk goes on with the next.
    fn error(&mut self, path: &str, err: &dyn Display);
    /// A member left out on purpose (a limit), with why.
    fn skipped(&mut self, path: &str, why: &str);
}

/// Opens the archive `data` found at `path` and hands every member to `visitor`, descending
/// into nested archives up to `limits.max_depth` levels. Returns `false` when `data` is not an
/// archive (nothing was called).
pub fn walk(path: &str, data: &[u8], limits: &ArchiveLimits, visitor: &mut dyn Visitor) -> bool {
    if limits.max_depth == 0 {
        return false;
    }
    let Some(k) = kind(data) else {
        return false;
    };
    let mut w = Walker {
        limits,
        visitor,
        budget: limits.max_total_size,
    };
    w.archive(path, k, data, 1);
    true
}

struct Walker<'a> {
    limits: &'a ArchiveLimits,
    visitor: &'a mut dyn Visitor,
    /// Uncompressed bytes still allowed for this top-level archive.
    budget: u64,
}

/// Why reading a member stopped.
#[derive(Debug)]
enum Stop {
    TooLarge,
    OverBudget,
    Io(std::io::Error),
}

impl Walker<'_> {
    fn archive(&mut self, path: &str, k: ArchiveKind, data: &[u8], depth: u32) {
        let result = match k {
            ArchiveKind::Zip => self.zip(path, data, depth),
            ArchiveKind::Tar => self.tar(path, data, depth),
            ArchiveKind::Gzip => {
                let dec = flate2::read::MultiGzDecoder::new(data);
                self.compressed(path, dec, depth)
            }
            ArchiveKind::Zstd => match zstd::stream::read::Decoder::new(data) {
                Ok(dec) => self.compressed(path, dec, depth),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            self.visitor.error(path, &e);
        }
    }

    /// A member: opened when it is an archive and depth allows, scanned otherwise.
    fn member(&mut self, path: &str, data: &[u8], depth: u32) {
        if let Some(k) = kind(data).filter(|_| depth < self.limits.max_depth) {
            self.archive(path, k, data, depth + 1);
            return;
        }
        self.visitor.file(path, data);
    }

    /// Reads a member into memory, within the member limit and what is left of the budget.
    fn read_member(&mut self, mut r: impl Read, hint: u64) -> Result<Vec<u8>, Stop> {
        let cap = self.limits.max_member_size.min(self.budget);
        let mut buf = Vec::with_capacity(hint.min(cap).min(16 << 20) as usize);
        // Read one byte past the cap to tell "exactly at the limit" from "over it"; a member's
        // declared size is not trusted.
        (&mut r)
            .take(cap + 1)
            .read_to_end(&mut buf)
            .map_err(Stop::Io)?;
        if buf.len() as u64 > cap {
            return Err(if cap == self.budget {
                Stop::OverBudget
            } else {
                Stop::TooLarge
            });
        }
        self.budget -= buf.len() as u64;
        Ok(buf)
    }

    fn stopped(&mut self, path: &str, stop: &Stop) -> bool {
        match stop {
            Stop::TooLarge => {
                self.visitor
                    .skipped(path, "archive member larger than the member size limit");
                false
            }
            Stop::OverBudget => {
                self.visitor.error(
                    path,
                    &"archive expands past the total size limit (decompression bomb?); rest skipped",
                );
                true
            }
            Stop::Io(e) => {
                self.visitor.error(path, e);
                true
            }
        }
    }

    fn zip(&mut self, path: &str, data: &[u8], depth: u32) -> std::io::Result<()> {
        let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(std::io::Error::other)?;
        for i in 0..zip.len() {
            let mut f = match zip.by_index(i) {
                Ok(f) => f,
                Err(e) => {
                    self.visitor.error(&format!("{path}!#{i}"), &e);
                    continue;
                }
            };
            if f.is_dir() {
                continue;
            }
            let member = format!("{path}!{}", clean(&f.name().replace('\\', "/")));
            if f.encrypted() {
                self.visitor.skipped(&member, "encrypted zip member");
                continue;
            }
            let (size, packed) = (f.size(), f.compressed_size());
            if size > 1 << 20 && size / packed.max(1) > self.limits.max_ratio {
                self.visitor.error(
                    &member,
                    &format_args!(
                        "compression ratio {}:1 over the limit (decompression bomb?); skipped",
                        size / packed.max(1)
                    ),
                );
                continue;
            }
            match self.read_member(&mut f, size) {
                Ok(buf) => {
                    drop(f);
                    self.member(&member, &buf, depth);
                }
                Err(stop) => {
                    if self.stopped(&member, &stop) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn tar(&mut self, path: &str, data: &[u8], depth: u32) -> std::io::Result<()> {
        let mut ar = tar::Archive::new(data);
        for entry in ar.entries()? {
            let mut e = entry?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let member = format!("{path}!{}", clean(&name));
            let size = e.size();
            match self.read_member(&mut e, size) {
                Ok(buf) => self.member(&member, &buf, depth),
                Err(stop) => {
                    if self.stopped(&member, &stop) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// A gzip or zstd stream: a compressed tar, or one compressed file (named after the outer
    /// file without its `.gz`/`.zst`).
    fn compressed(&mut self, path: &str, dec: impl Read, depth: u32) -> std::io::Result<()> {
        let data = match self.read_member(dec, 0) {
            Ok(d) => d,
            Err(stop) => {
                self.stopped(path, &stop);
                return Ok(());
            }
        };
        if is_tar(&data) {
            // The decompressed tar is the same level as its compression: `a.tgz!pkg/x`.
            return self.tar(path, &data, depth);
        }
        let base = path.rsplit(['/', '!']).next().unwrap_or(path);
        let inner = base
            .strip_suffix(".gz")
            .or_else(|| base.strip_suffix(".zst"))
            .or_else(|| base.strip_suffix(".tgz"))
            .unwrap_or(base);
        self.member(&format!("{path}!{inner}"), &data, depth);
        Ok(())
    }
}

/// A member name as reported: no leading `/` or `./`.
fn clean(name: &str) -> &str {
    let mut s = name;
    loop {
        if let Some(r) = s.strip_prefix("./") {
            s = r;
        } else if let Some(r) = s.strip_prefix('/') {
            s = r;
        } else {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Collect {
        files: Vec<(String, Vec<u8>)>,
        errors: Vec<String>,
        skipped: Vec<String>,
    }
    impl Visitor for Collect {
        fn file(&mut self, path: &str, data: &[u8]) {
            self.files.push((path.to_owned(), data.to_vec()));
        }
        fn error(&mut self, path: &str, err: &dyn Display) {
            self.errors.push(format!("{path}: {err}"));
        }
        fn skipped(&mut self, path: &str, why: &str) {
            self.skipped.push(format!("{path}: {why}"));
        }
    }

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn tgz_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn nested_zip_in_tgz_names_members() {
        let jar = zip_of(&[("config/app.properties", b"key=value\n")]);
        let tgz = tgz_of(&[("package/lib/app.jar", &jar), ("package/index.js", b"x\n")]);
        let mut c = Collect::default();
        assert!(walk("p.tgz", &tgz, &ArchiveLimits::default(), &mut c));
        let names: Vec<_> = c.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "p.tgz!package/lib/app.jar!config/app.properties",
                "p.tgz!package/index.js"
            ]
        );
        assert!(c.errors.is_empty(), "{:?}", c.errors);
    }

    #[test]
    fn depth_limit_stops_descent() {
        let inner = zip_of(&[("a.txt", b"a\n")]);
        let outer = zip_of(&[("inner.zip", &inner)]);
        let limits = ArchiveLimits {
            max_depth: 1,
            ..ArchiveLimits::default()
        };
        let mut c = Collect::default();
        walk("o.zip", &outer, &limits, &mut c);
        assert_eq!(c.files.len(), 1);
        assert_eq!(c.files[0].0, "o.zip!inner.zip");
        assert!(!walk(
            "o.zip",
            &outer,
            &ArchiveLimits {
                max_depth: 0,
                ..limits
            },
            &mut c
        ));
    }

    #[test]
    fn bomb_is_refused() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = {
            let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("zeros", opts).unwrap();
            w.write_all(&zeros).unwrap();
            w.finish().unwrap().into_inner()
        };
        let mut c = Collect::default();
        walk("b.zip", &bomb, &ArchiveLimits::default(), &mut c);
        assert!(c.files.is_empty());
        assert!(c.errors[0].contains("decompression bomb"), "{:?}", c.errors);

        // A gzip expanding past the total budget stops.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        let limits = ArchiveLimits {
            max_total_size: 1 << 20,
            ..ArchiveLimits::default()
        };
        let mut c = Collect::default();
        walk("z.gz", &gz, &limits, &mut c);
        assert!(c.files.is_empty());
        assert!(c.errors[0].contains("total size limit"), "{:?}", c.errors);
    }

    #[test]
    fn corrupt_archive_is_reported() {
        let mut jar = zip_of(&[("a.txt", b"a\n")]);
        jar.truncate(jar.len() / 2);
        let mut c = Collect::default();
        assert!(walk("x.jar", &jar, &ArchiveLimits::default(), &mut c));
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    }

    #[test]
    fn single_gzip_file() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"token\n").unwrap();
        let gz = gz.finish().unwrap();
        let mut c = Collect::default();
        walk("d/env.txt.gz", &gz, &ArchiveLimits::default(), &mut c);
        assert_eq!(
            c.files,
            [("d/env.txt.gz!env.txt".to_owned(), b"token\n".to_vec())]
        );
    }
}
