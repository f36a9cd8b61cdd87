//! `scan git` on repositories built with the git CLI: attribution, `in_head`, every kind of ref,
//! messages, unreachable objects, shallow and partial clones, ranges, state, damage.

use crate::support::{gh_token, keyward, stderr};
use keyward_detectors::Fingerprint;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RULE: &str = "github-pat-classic";

/// A repository in a temp dir, driven by the git CLI with a fixed identity and clock.
struct Repo {
    dir: tempfile::TempDir,
    clock: std::cell::Cell<u64>,
}

impl Repo {
    fn new() -> Repo {
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
            clock: std::cell::Cell::new(1_700_000_000),
        };
        r.git(&["init", "-q", "-b", "main", "."]);
        r
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, dir: &Path) -> Command {
        let t = self.clock.get();
        let date = format!("{t} +0000");
        let mut c = Command::new("git");
        c.current_dir(dir)
            .env("GIT_AUTHOR_NAME", "Alice")
            .env("GIT_AUTHOR_EMAIL", "alice@example.com")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", "Bob")
            .env("GIT_COMMITTER_EMAIL", "bob@example.com")
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", self.path());
        c
    }

    /// Runs git in the repository; panics on failure; returns stdout, trimmed.
    fn git(&self, args: &[&str]) -> String {
        git_in(self.cmd(self.path()), args)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    /// Stages everything and commits; returns the commit id. Each commit is a minute later.
    fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.commit_staged(message)
    }

    /// Commits what is staged.
    fn commit_staged(&self, message: &str) -> String {
        self.clock.set(self.clock.get() + 60);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn git_in(mut c: Command, args: &[&str]) -> String {
    let out = c.args(args).output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What one `scan git` run gave.
struct Scanned {
    out: Output,
    findings: Vec<Value>,
    stats: Value,
}

impl Scanned {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// The one finding of `token`.
    fn finding(&self, token: &str) -> &Value {
        let fp = Fingerprint::of(RULE, token.as_bytes());
        let hits: Vec<&Value> = self
            .findings
            .iter()
            .filter(|f| f["fingerprint"] == fp.as_str())
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "expected one finding of the token, got {:#?}\nstderr: {}",
            self.findings,
            stderr(&self.out)
        );
        hits[0]
    }
}

/// `keyward scan git PATH -f json --per-location --only github-pat-classic --stats-json …
/// EXTRA…`: one record per place, as these tests check attribution place by place.
fn scan(path: &Path, extra: &[&str]) -> Scanned {
    let stats_dir = tempfile::tempdir().unwrap();
    let stats: PathBuf = stats_dir.path().join("stats.json");
    let out = keyward()
        .args(["scan", "git"])
        .arg(path)
        .args([
            "-f",
            "json",
            "--per-location",
            "--only",
            RULE,
            "--stats-json",
        ])
        .arg(&stats)
        .args(extra)
        .output()
        .expect("run keyward");
    let findings: Vec<Value> = if out.stdout.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not a JSON array ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                stderr(&out)
            )
        })
    };
    let stats = std::fs::read(&stats).map_or(Value::Null, |b| serde_json::from_slice(&b).unwrap());
    Scanned {
        out,
        findings,
        stats,
    }
}

fn assert_attributed(f: &Value, commit: &str, path: Option<&str>, line: u64, in_head: bool) {
    let l = &f["location"];
    assert_eq!(l["source"], "git", "{f:#}");
    assert_eq!(l["commit"], commit, "{f:#}");
    assert_eq!(l["path"], path.map_or(Value::Null, Value::from), "{f:#}");
    assert_eq!(l["line"], line, "{f:#}");
    assert_eq!(l["in_head"], in_head, "{f:#}");
    assert_eq!(l["author"], "Alice <alice@example.com>", "{f:#}");
}

#[test]
fn secret_added_then_deleted_is_found_with_its_commit() {
    let r = Repo::new();
    let (gone, kept) = (gh_token(101), gh_token(102));
    r.write("README.md", "hello\n");
    r.commit("init");
    r.write(
        "deploy/env.sh",
        &format!("#!/bin/sh\nexport GITHUB_TOKEN={gone}\n"),
    );
    r.write("keep.txt", &format!("one\ntwo\ntoken: {kept}\n"));
    let added = r.commit("Add deploy env\n\nbody text");
    r.git(&["rm", "-q", "deploy/env.sh"]);
    r.write("keep.txt", &format!("zero\none\ntwo\ntoken: {kept}\n"));
    let edited = r.commit("Remove the env file");

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 3, "{:#?}", s.findings);
    let f = s.finding(&gone);
    assert_attributed(f, &added, Some("deploy/env.sh"), 2, false);
    assert_eq!(f["location"]["column"], 21);
    assert_eq!(f["location"]["date"], "2023-11-14T22:15:20+00:00");
    assert_eq!(f["location"]["summary"], "Add deploy env");
    assert_eq!(f["rule"], RULE);
    assert_eq!(
        f["fingerprint"],
        Fingerprint::of(RULE, gone.as_bytes()).as_str()
    );
    assert!(!String::from_utf8_lossy(&s.out.stdout).contains(&gone));
    // The kept secret is in two blobs of keep.txt: one finding per blob, both in HEAD.
    let kept_fp = Fingerprint::of(RULE, kept.as_bytes());
    let mut kept_hits: Vec<(String, u64, bool)> = s
        .findings
        .iter()
        .filter(|f| f["fingerprint"] == kept_fp.as_str())
        .map(|f| {
            let l = &f["location"];
            (
                l["commit"].as_str().unwrap().to_owned(),
                l["line"].as_u64().unwrap(),
                l["in_head"].as_bool().unwrap(),
            )
        })
        .collect();
    kept_hits.sort();
    let mut want = vec![(added.clone(), 3, true), (edited.clone(), 4, true)];
    want.sort();
    assert_eq!(kept_hits, want);
    // 4 unique blobs (README, env.sh, two keep.txt), 3 commit messages.
    assert_eq!(s.stats["blobs_scanned"], 4, "{:#}", s.stats);
    assert_eq!(s.stats["commits"], 3);
    assert_eq!(s.stats["messages"], 3);

    // The same from a bare clone, with the same fingerprints.
    let bare = tempfile::tempdir().unwrap();
    git_in(
        r.cmd(r.path()),
        &["clone", "-q", "--bare", ".", bare.path().to_str().unwrap()],
    );
    let b = scan(bare.path(), &[]);
    assert_eq!(b.code(), Some(1), "{}", stderr(&b.out));
    assert_attributed(b.finding(&gone), &added, Some("deploy/env.sh"), 2, false);
    assert_eq!(b.findings.len(), 3);
}

#[test]
fn secret_on_a_non_default_branch_only() {
    let r = Repo::new();
    let tok = gh_token(201);
    r.write("a.txt", "a\n");
    r.commit("init");
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("src/config.py", &format!("# settings\n\nAPI = \"{tok}\"\n"));
    let c = r.commit("feature work");
    r.git(&["checkout", "-q", "main"]);
    r.write("b.txt", "b\n");
    r.commit("main work");

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 1);
    assert_attributed(s.finding(&tok), &c, Some("src/config.py"), 3, false);
    assert_eq!(s.finding(&tok)["location"]["column"], 8);
}

#[test]
fn secret_reachable_only_from_a_tag() {
    let r = Repo::new();
    let tok = gh_token(301);
    r.write("a.txt", "a\n");
    r.commit("init");
    r.git(&["checkout", "-q", "--detach"]);
    r.write("release/notes.txt", &format!("release creds {tok}\n"));
    let c = r.commit("release build");
    r.git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    r.git(&["checkout", "-q", "main"]);

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 1);
    assert_attributed(s.finding(&tok), &c, Some("release/notes.txt"), 1, false);
}

#[test]
fn renamed_file_is_scanned_once_and_attributed_to_where_it_came_in() {
    let r = Repo::new();
    let tok = gh_token(401);
    r.write("old/name.env", &format!("A=1\nB={tok}\n"));
    let c = r.commit("add env");
    std::fs::create_dir(r.path().join("new")).unwrap();
    r.git(&["mv", "old/name.env", "new/place.env"]);
    r.commit("rename");

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 1, "{:#?}", s.findings);
    // The blob did not change: one blob, scanned once, still at the tip under its new name.
    assert_attributed(s.finding(&tok), &c, Some("old/name.env"), 2, true);
    assert_eq!(s.stats["blobs_scanned"], 1);
}

#[test]
fn secret_in_a_commit_message() {
    let r = Repo::new();
    let tok = gh_token(501);
    r.write("a.txt", "a\n");
    r.commit("init");
    r.write("b.txt", "b\n");
    let c = r.commit(&format!("Fix the deploy\n\nused token {tok} to test"));

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 1);
    let f = s.finding(&tok);
    assert_attributed(f, &c, None, 3, false);
    assert_eq!(f["location"]["summary"], "Fix the deploy");
    assert_eq!(f["location"]["column"], 12);
}

#[test]
fn unreachable_commit_needs_include_unreachable() {
    let r = Repo::new();
    let tok = gh_token(601);
    r.write("a.txt", "a\n");
    r.commit("init");
    r.git(&["checkout", "-q", "-b", "oops"]);
    r.write("leak.txt", &format!("{tok}\n"));
    let c = r.commit("oops");
    r.git(&["checkout", "-q", "main"]);
    r.git(&["branch", "-q", "-D", "oops"]);
    r.git(&[
        "reflog",
        "expire",
        "--expire=now",
        "--expire-unreachable=now",
        "--all",
    ]);
    // Nothing names the commit any more, but its objects are still in the database.
    assert_eq!(r.git(&["cat-file", "-t", &c]), "commit");

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(0), "{}", stderr(&s.out));
    assert!(s.findings.is_empty(), "{:#?}", s.findings);

    let u = scan(r.path(), &["--include-unreachable"]);
    assert_eq!(u.code(), Some(1), "{}", stderr(&u.out));
    assert_eq!(u.findings.len(), 1);
    assert_attributed(u.finding(&tok), &c, Some("leak.txt"), 1, false);
    assert_eq!(u.stats["unreachable_commits"], 1);
}

#[test]
fn stash_entries_are_scanned() {
    let r = Repo::new();
    let (first, second) = (gh_token(701), gh_token(702));
    r.write("a.txt", "a\n");
    r.commit("init");
    r.write("a.txt", &format!("a\n{first}\n"));
    r.git(&["stash", "-q"]);
    r.write("a.txt", &format!("a\nb\n{second}\n"));
    r.git(&["stash", "-q"]);

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 2, "{:#?}", s.findings);
    // The older stash lives only in the stash reflog.
    assert_eq!(s.finding(&first)["location"]["line"], 2);
    assert_eq!(s.finding(&second)["location"]["line"], 3);
    assert_eq!(s.finding(&second)["location"]["in_head"], false);
}

#[test]
fn shallow_clone_scans_what_is_there() {
    let r = Repo::new();
    let (old, tip) = (gh_token(801), gh_token(802));
    r.write("old.txt", &format!("{old}\n"));
    r.commit("old secret");
    r.git(&["rm", "-q", "old.txt"]);
    r.commit("remove it");
    r.write("tip.txt", &format!("x\n{tip}\n"));
    let c = r.commit("tip secret");

    let dst = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    git_in(
        r.cmd(r.path()),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            dst.path().to_str().unwrap(),
        ],
    );
    let s = scan(dst.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.stats["shallow"], true);
    assert!(
        stderr(&s.out).contains("Shallow clone"),
        "{}",
        stderr(&s.out)
    );
    assert_eq!(s.findings.len(), 1, "{:#?}", s.findings);
    assert_attributed(s.finding(&tip), &c, Some("tip.txt"), 2, true);
    assert_eq!(s.stats["commits"], 1);
}

#[test]
fn partial_clone_with_missing_blobs_goes_on() {
    let r = Repo::new();
    r.git(&["config", "uploadpack.allowfilter", "true"]);
    let tok = gh_token(901);
    r.write("a.txt", &format!("{tok}\n"));
    r.commit("one");
    r.write("b.txt", "b\n");
    let c = r.commit(&format!("two {}", gh_token(902)));

    let dst = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    git_in(
        r.cmd(r.path()),
        &[
            "clone",
            "-q",
            "--no-checkout",
            "--filter=blob:none",
            &url,
            dst.path().to_str().unwrap(),
        ],
    );
    let s = scan(dst.path(), &[]);
    assert_eq!(s.stats["partial_clone"], true, "{}", stderr(&s.out));
    assert_eq!(s.stats["missing_blobs"], 2, "{:#}", s.stats);
    assert!(
        stderr(&s.out).contains("Partial clone"),
        "{}",
        stderr(&s.out)
    );
    // The blobs are not there, the commit message is.
    assert_eq!(s.code(), Some(1));
    assert_eq!(s.findings.len(), 1);
    assert_attributed(s.finding(&gh_token(902)), &c, None, 1, false);
}

#[test]
fn range_scans_only_blobs_the_range_introduced() {
    let r = Repo::new();
    let tok = gh_token(1001);
    r.write("a.txt", "a\n");
    r.write("b.txt", "b\n");
    let c1 = r.commit("one");
    r.write("c.txt", &format!("{tok}\n"));
    let c2 = r.commit("two");
    r.write("d.txt", "d\n");
    r.write("a.txt", "a2\n");
    let c3 = r.commit("three");

    let s = scan(r.path(), &["--range", &format!("{c2}..{c3}")]);
    assert_eq!(s.code(), Some(0), "{}", stderr(&s.out));
    assert_eq!(s.stats["blobs_scanned"], 2, "{:#}", s.stats);
    assert_eq!(s.stats["commits"], 1);

    let s = scan(r.path(), &["--range", &format!("{c1}..{c3}")]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.stats["blobs_scanned"], 3, "{:#}", s.stats);
    assert_attributed(s.finding(&tok), &c2, Some("c.txt"), 1, true);

    let s = scan(r.path(), &["--since", &c2]);
    assert_eq!(s.code(), Some(0), "{}", stderr(&s.out));
    assert_eq!(s.stats["blobs_scanned"], 2, "{:#}", s.stats);

    let bad = scan(r.path(), &["--range", "nope..HEAD"]);
    assert_eq!(bad.code(), Some(64), "{}", stderr(&bad.out));
}

#[test]
fn state_file_makes_the_next_run_scan_only_new_objects() {
    let r = Repo::new();
    let (old, new) = (gh_token(1101), gh_token(1102));
    r.write("a.txt", "a\n");
    r.write("dir/b.txt", &format!("{old}\n"));
    let one = r.commit("one");
    r.write("dir/c.txt", "c\n");
    r.commit("two");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("git.state");
    let state = state.to_str().unwrap();

    let first = scan(r.path(), &["--state", state]);
    assert_eq!(first.code(), Some(1), "{}", stderr(&first.out));
    assert_eq!(first.stats["blobs_scanned"], 3);
    assert_eq!(first.stats["incremental"], false);
    assert_attributed(first.finding(&old), &one, Some("dir/b.txt"), 1, true);

    let again = scan(r.path(), &["--state", state]);
    assert_eq!(again.code(), Some(0), "{}", stderr(&again.out));
    assert_eq!(again.stats["incremental"], true);
    assert_eq!(again.stats["blobs_scanned"], 0);
    assert_eq!(again.stats["commits"], 0);
    assert_eq!(again.stats["trees"], 0);

    r.write("dir/d.txt", &format!("d\n{new}\n"));
    let c = r.commit("three");
    let next = scan(r.path(), &["--state", state]);
    assert_eq!(next.code(), Some(1), "{}", stderr(&next.out));
    assert_eq!(next.stats["blobs_scanned"], 1, "{:#}", next.stats);
    assert_eq!(next.stats["commits"], 1);
    // Root tree and dir/ changed; nothing else is read.
    assert_eq!(next.stats["trees"], 2);
    assert_eq!(next.findings.len(), 1);
    assert_attributed(next.finding(&new), &c, Some("dir/d.txt"), 2, true);

    // Other rules: the state does not apply, everything is scanned again.
    let out = keyward()
        .args(["scan", "git"])
        .arg(r.path())
        .args([
            "-f",
            "json",
            "--state",
            state,
            "--only",
            "github-oauth-token",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = scan(r.path(), &["--state", state]);
    assert_eq!(all.stats["incremental"], false);
    assert_eq!(all.stats["blobs_scanned"], 4);
}

#[test]
fn corrupt_and_missing_objects_are_reported_and_the_scan_goes_on() {
    let r = Repo::new();
    let tok = gh_token(1201);
    r.write("good.txt", &format!("{tok}\n"));
    r.write("bad.txt", "this blob gets damaged\n");
    r.write("gone.txt", "this blob gets deleted\n");
    let c = r.commit("three files");
    let bad = r.git(&["rev-parse", "HEAD:bad.txt"]);
    let gone = r.git(&["rev-parse", "HEAD:gone.txt"]);
    let loose = |id: &str| r.path().join(".git/objects").join(&id[..2]).join(&id[2..]);
    std::fs::remove_file(loose(&bad)).unwrap();
    std::fs::write(loose(&bad), b"\x78\x01garbage, not zlib").unwrap();
    std::fs::remove_file(loose(&gone)).unwrap();

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    let err = stderr(&s.out);
    assert!(err.contains(&bad), "damaged blob id not reported: {err}");
    assert!(err.contains(&gone), "missing blob id not reported: {err}");
    assert_eq!(s.stats["unreadable"], 1, "{:#}", s.stats);
    assert_eq!(s.stats["missing_blobs"], 1, "{:#}", s.stats);
    assert_attributed(s.finding(&tok), &c, Some("good.txt"), 1, true);
}

#[test]
fn submodules_are_listed_and_lfs_pointers_and_binaries_skipped() {
    let r = Repo::new();
    let tok = gh_token(1301);
    r.write(
        "model.bin",
        &format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 12345\n{tok}\n",
            "0".repeat(64)
        ),
    );
    r.write("blob.dat", &format!("\0\0binary {tok}\n"));
    r.write("ok.txt", "ok\n");
    r.git(&["add", "-A"]);
    let pinned = "1234567890123456789012345678901234567890";
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{pinned},vendor/lib"),
    ]);
    r.commit_staged("lfs, binary, submodule");

    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(0), "{:#?} {}", s.findings, stderr(&s.out));
    assert_eq!(s.stats["skipped_lfs"], 1, "{:#}", s.stats);
    assert_eq!(s.stats["skipped_binary"], 1);
    assert_eq!(s.stats["blobs_scanned"], 1);
    assert_eq!(
        s.stats["submodules"],
        serde_json::json!([{"path": "vendor/lib", "commit": pinned}])
    );
    assert!(stderr(&s.out).contains("vendor/lib"), "{}", stderr(&s.out));
}

#[test]
fn suppression_applies_to_history() {
    let r = Repo::new();
    let (allowed, ignored, reported) = (gh_token(1401), gh_token(1402), gh_token(1403));
    r.write(
        "a.txt",
        &format!("x = {allowed} # keyward:allow test fixture\ny = {ignored}\nz = {reported}\n"),
    );
    r.write(
        ".keywardignore",
        &format!("{}\n", Fingerprint::of(RULE, ignored.as_bytes()).as_str()),
    );
    r.commit("fixtures");
    let s = scan(r.path(), &[]);
    assert_eq!(s.code(), Some(1), "{}", stderr(&s.out));
    assert_eq!(s.findings.len(), 1, "{:#?}", s.findings);
    assert_eq!(s.finding(&reported)["location"]["line"], 3);
}

#[test]
fn not_a_repository_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let out = keyward()
        .args(["scan", "git"])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}

#[test]
fn a_secret_in_five_versions_is_one_finding_that_began_at_its_first_commit() {
    let r = Repo::new();
    let token = gh_token(150);
    r.write("README.md", "hello\n");
    r.commit("init");
    let mut commits = Vec::new();
    for v in 0..5 {
        r.write(
            "deploy/env.sh",
            &format!("# v{v}\nexport GITHUB_TOKEN={token}\n"),
        );
        commits.push(r.commit(&format!("env v{v}")));
    }
    let out = keyward()
        .args(["scan", "git"])
        .arg(r.path())
        .args(["-f", "json", "--only", RULE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_attributed(f, &commits[0], Some("deploy/env.sh"), 2, true);
    assert_eq!(f["location"]["summary"], "env v0");
    assert_eq!(f["in_head"], true);
    let places: Vec<&str> = f["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["commit"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = commits.iter().map(String::as_str).collect();
    expected[1..].sort_unstable();
    assert_eq!(
        places, expected,
        "began first, then the rest in report order"
    );
    assert_eq!(f["confidence"], "high");
    assert_eq!(f["reasons"], serde_json::json!(["checksum-verified"]));

    // `--per-location`: one record per version, each naming the secret's confidence.
    let per = scan(r.path(), &[]);
    assert_eq!(per.findings.len(), 5, "{:#?}", per.findings);
    let mut per_commits: Vec<&str> = per
        .findings
        .iter()
        .map(|f| f["location"]["commit"].as_str().unwrap())
        .collect();
    per_commits.sort_unstable();
    let mut all: Vec<&str> = commits.iter().map(String::as_str).collect();
    all.sort_unstable();
    assert_eq!(per_commits, all);
    assert!(per.findings.iter().all(|f| f.get("locations").is_none()));

    // The text report: the first commit, and the other four places, three shown.
    let out = keyward()
        .args(["scan", "git"])
        .arg(r.path())
        .args(["-f", "text", "--only", RULE])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "began        commit {} (Alice <alice@example.com>,",
            commits[0]
        )),
        "{text}"
    );
    assert!(text.contains("in HEAD      yes"), "{text}");
    assert!(text.contains("also at      4 more places:"), "{text}");
    assert!(text.contains("           and 1 more\n"), "{text}");
}
