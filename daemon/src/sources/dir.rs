//! `keyward scan dir`: files and directories, walked in parallel.

use crate::finding::Location;
use crate::scan::Scan;
use crate::sources::archive::{self, ArchiveLimits};
use ignore::{WalkBuilder, WalkState};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files up to this size are read into a reused buffer.
const READ_MAX: u64 = 1 << 20;
/// Files up to this size are memory-mapped and scanned whole; larger ones are streamed in
/// chunks so memory stays flat whatever their size.
const MMAP_MAX: u64 = 64 << 20;
/// Bytes inspected for a NUL to call a file binary (what git and ripgrep do).
const BINARY_SNIFF: usize = 8 * 1024;

/// Options of a directory scan.
#[derive(Debug, Clone)]
pub struct DirOptions {
    /// Honour `.gitignore`/`.ignore` files (default off: ignored `.env` files are where secrets
    /// hide).
    pub respect_gitignore: bool,
    /// Scan files that look binary.
    pub scan_binary: bool,
    /// Largest file scanned.
    pub max_file_size: u64,
    /// Worker threads.
    pub threads: usize,
    /// Archives opened (`max_depth` 0: none). Archives larger than `max_member_size` are
    /// scanned as plain files.
    pub archives: ArchiveLimits,
}

/// Walks `roots` and scans every file.
pub fn scan(scan: &Scan, roots: &[PathBuf], opts: &DirOptions) {
    let mut builder = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        builder.add(r);
    }
    builder
        .hidden(false)
        .parents(opts.respect_gitignore)
        .ignore(opts.respect_gitignore)
        .git_ignore(opts.respect_gitignore)
        .git_global(opts.respect_gitignore)
        .git_exclude(opts.respect_gitignore)
        .require_git(false)
        .follow_links(false)
        .threads(opts.threads)
        .filter_entry(|e| !(e.file_name() == ".git" && e.file_type().is_some_and(|t| t.is_dir())));
    builder.build_parallel().run(|| {
        let mut buf = Vec::new();
        Box::new(move |entry| {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    scan_file(scan, e.path(), opts, &mut buf);
                }
                Ok(_) => {}
                Err(err) => {
                    let what = match &err {
                        ignore::Error::WithPath { path, .. } => path.display().to_string(),
                        _ => "directory walk".to_owned(),
                    };
                    scan.error(&what, &err);
                }
            }
            WalkState::Continue
        })
    });
}

/// The path as reported: as walked, without a leading `./`.
fn display_path(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_owned()
}

fn scan_file(scan: &Scan, path: &Path, opts: &DirOptions, buf: &mut Vec<u8>) {
    let shown = display_path(path);
    if scan.suppressor().path_allowed(&shown) {
        scan.skipped(&shown, "allowlisted path");
        return;
    }
    let location = Location {
        source: crate::finding::SourceKind::File,
        path: Some(shown.clone()),
        ..Location::default()
    };
    if let Err(e) = read_and_scan(scan, path, &shown, &location, opts, buf) {
        scan.error(&shown, &e);
    }
}

fn read_and_scan(
    scan: &Scan,
    path: &Path,
    shown: &str,
    location: &Location,
    opts: &DirOptions,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > opts.max_file_size {
        scan.skipped(shown, "larger than --max-file-size");
        return Ok(());
    }
    if len <= READ_MAX {
        buf.clear();
        file.read_to_end(buf)?;
        if open_archive(scan, shown, buf, opts) {
            return Ok(());
        }
        if !opts.scan_binary && is_binary(buf) {
            scan.skipped(shown, "binary");
            return Ok(());
        }
        scan.scan_bytes(buf, location);
    } else if len <= MMAP_MAX {
        let map = map_file(&file)?;
        if len <= opts.archives.max_member_size && open_archive(scan, shown, &map, opts) {
            return Ok(());
        }
        if !opts.scan_binary && is_binary(&map) {
            scan.skipped(shown, "binary");
            return Ok(());
        }
        scan.scan_bytes(&map, location);
    } else {
        let mut head = vec![0u8; BINARY_SNIFF];
        let n = read_up_to(&mut file, &mut head)?;
        head.truncate(n);
        if !opts.scan_binary && is_binary(&head) {
            scan.skipped(shown, "binary");
            return Ok(());
        }
        scan.scan_reader(std::io::Cursor::new(head).chain(file), location)?;
    }
    Ok(())
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[allow(unsafe_code)]
fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and lives only while this file is scanned. If another
    // process truncates the file meanwhile, reads past the new end raise SIGBUS; ripgrep
    // accepts the same trade-off for the speed of mapped reads of large files.
    unsafe { memmap2::MmapOptions::new().populate().map(file) }
}

/// Scans the members of `data` when it is an archive and archives are opened.
fn open_archive(scan: &Scan, shown: &str, data: &[u8], opts: &DirOptions) -> bool {
    struct Members<'a>(&'a Scan, bool);
    impl archive::Visitor for Members<'_> {
        fn file(&mut self, path: &str, data: &[u8]) {
            if !self.1 && is_binary(data) {
                self.0.skipped(path, "binary");
                return;
            }
            let location = Location {
                source: crate::finding::SourceKind::File,
                path: Some(path.to_owned()),
                ..Location::default()
            };
            self.0.scan_bytes(data, &location);
        }
        fn error(&mut self, path: &str, err: &dyn std::fmt::Display) {
            self.0.error(path, err);
        }
        fn skipped(&mut self, path: &str, why: &str) {
            self.0.skipped(path, why);
        }
    }
    archive::walk(
        shown,
        data,
        &opts.archives,
        &mut Members(scan, opts.scan_binary),
    )
}

/// A NUL byte in the first 8 KiB.
pub fn is_binary(bytes: &[u8]) -> bool {
    memchr::memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF)]).is_some()
}
