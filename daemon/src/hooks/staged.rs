//! What a commit adds: the lines of the staged content (the index git is committing, which
//! `GIT_INDEX_FILE` names during `git commit -a` or `git commit PATH`) that `HEAD` does not
//! have. Read with libgit2 in-process: no `git` child process on the hook's hot path.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One file with added lines.
#[derive(Debug)]
pub struct Added {
    /// Path in the repository (the new path of a rename).
    pub path: String,
    /// The staged blob.
    pub blob: git2::Oid,
    /// 1-based numbers of the added lines in the staged blob.
    pub lines: BTreeSet<u64>,
    /// The added lines' text, newline-terminated (for the keyword pre-check).
    pub text: Vec<u8>,
}

/// The repository the hook runs in (`GIT_DIR`, `GIT_WORK_TREE` and discovery from the
/// current directory, as git does).
///
/// # Errors
/// Not inside a repository.
pub fn open() -> Result<git2::Repository> {
    git2::Repository::open_from_env().context("not inside a git repository")
}

/// The staged index: `GIT_INDEX_FILE` when git set it, else the repository's.
///
/// # Errors
/// The index cannot be read.
pub fn index(repo: &git2::Repository) -> Result<git2::Index> {
    match std::env::var_os("GIT_INDEX_FILE") {
        Some(f) if !f.is_empty() => {
            let mut p = PathBuf::from(f);
            if p.is_relative() {
                p = std::env::current_dir()?.join(p);
            }
            git2::Index::open(&p).with_context(|| format!("reading the index {}", p.display()))
        }
        _ => repo.index().context("reading the index"),
    }
}

/// The files the staged index adds lines to, against `HEAD` (the empty tree for the first
/// commit). Renames are detected, so a moved file contributes only its changed lines; binary
/// files contribute nothing; deleted lines never count.
///
/// # Errors
/// The index or `HEAD` cannot be read.
pub fn added(repo: &git2::Repository, index: &git2::Index) -> Result<Vec<Added>> {
    let head = match repo.head() {
        Ok(h) => Some(h.peel_to_tree().context("reading HEAD's tree")?),
        // An unborn branch: the first commit adds everything.
        Err(e)
            if e.code() == git2::ErrorCode::UnbornBranch
                || e.code() == git2::ErrorCode::NotFound =>
        {
            None
        }
        Err(e) => return Err(e).context("reading HEAD"),
    };
    let mut opts = git2::DiffOptions::new();
    opts.context_lines(0)
        .ignore_submodules(true)
        .include_typechange(true);
    let mut diff = repo
        .diff_tree_to_index(head.as_ref(), Some(index), Some(&mut opts))
        .context("comparing the index with HEAD")?;
    let mut find = git2::DiffFindOptions::new();
    find.renames(true).copies(false);
    diff.find_similar(Some(&mut find))
        .context("detecting renames")?;

    let mut files: Vec<Added> = Vec::new();
    diff.foreach(
        &mut |_, _| true,
        None,
        None,
        Some(&mut |delta, _hunk, line| {
            if line.origin() != '+' {
                return true;
            }
            let Some(n) = line.new_lineno() else {
                return true;
            };
            let file = delta.new_file();
            let blob = file.id();
            let path = file
                .path_bytes()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            if files.last().is_none_or(|f| f.path != path) {
                files.push(Added {
                    path,
                    blob,
                    lines: BTreeSet::new(),
                    text: Vec::new(),
                });
            }
            let f = files.last_mut().expect("pushed above");
            f.lines.insert(u64::from(n));
            f.text.extend_from_slice(line.content());
            if !line.content().ends_with(b"\n") {
                f.text.push(b'\n');
            }
            true
        }),
    )
    .context("reading the staged changes")?;
    Ok(files)
}
