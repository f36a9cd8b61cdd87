//! `keyward hook …` driven by real `git commit` and `git push`: pre-commit in a clone,
//! pre-receive in a local bare repository (objects in git's quarantine), pre-push, install and
//! uninstall, and the pre-commit framework with the repository's `.pre-commit-hooks.yaml`.

use crate::support::{gh_token, keyward, stderr};
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git command in `dir` with a fixed identity, no user or system config, and no keyward
/// settings from the environment.
fn git_cmd(dir: &Path, home: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.com")
        .env("GIT_COMMITTER_NAME", "Bob")
        .env("GIT_COMMITTER_EMAIL", "bob@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", home)
        .env_remove("KEYWARD_CONFIG")
        .env_remove("KEYWARD_LOG")
        .env_remove("KEYWARD_HOOK_TIME_BUDGET")
        .env_remove("KEYWARD_HOOK_ON_TIMEOUT");
    c
}

/// A temp dir holding a clone (`work`) and, for push tests, a bare repository (`server.git`).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir(s.work()).unwrap();
        s.git(&["init", "-q", "-b", "main", "."]);
        s.git(&["config", "user.name", "Alice"]);
        s.git(&["config", "user.email", "alice@example.com"]);
        s
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn server(&self) -> PathBuf {
        self.dir.path().join("server.git")
    }

    /// Creates the bare repository and adds it as `origin`.
    fn with_server(self) -> Setup {
        let out = git_cmd(self.dir.path(), self.dir.path())
            .args(["init", "-q", "--bare", "-b", "main", "server.git"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let server = self.server();
        self.git(&["remote", "add", "origin", server.to_str().unwrap()]);
        self
    }

    fn try_git(&self, args: &[&str]) -> Output {
        git_cmd(&self.work(), self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = self.try_git(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn commit(&self, msg: &str) -> Output {
        self.git(&["add", "-A"]);
        self.try_git(&["commit", "-q", "-m", msg])
    }
}

/// `keyward hook install --repo REPO FLAGS`, which must succeed.
fn install(repo: &Path, flags: &[&str]) -> Output {
    let out = keyward()
        .args(["hook", "install", "--repo", repo.to_str().unwrap()])
        .args(flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "install failed: {}", stderr(&out));
    out
}

/// The fingerprint named in a blocking message.
fn fingerprint(err: &str) -> String {
    let at = err
        .find("fingerprint ")
        .expect("a fingerprint in the message")
        + 12;
    err[at..at + 32].to_owned()
}

fn assert_blocked(out: &Output, token: &str, place: &str) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "not blocked: {err}");
    assert!(err.contains(place), "no {place:?} in: {err}");
    assert!(err.contains("github-pat-classic"), "no rule in: {err}");
    assert!(!err.contains(token), "the secret is shown in clear: {err}");
    assert!(err.contains(&token[..4]), "no redacted secret in: {err}");
    assert!(err.contains("keyward:allow"), "no allow advice in: {err}");
    assert!(err.contains(".keywardignore"), "no ignore advice in: {err}");
    err
}

#[test]
fn pre_commit_blocks_an_added_secret_and_allows_the_fix_or_the_allow_comment() {
    let s = Setup::new();
    install(&s.work(), &["--pre-commit"]);
    let token = gh_token(1);
    // The first commit of the repository.
    s.write("README", "hello\n");
    s.write("config/app.env", &format!("NAME=x\nGITHUB_TOKEN={token}\n"));
    let out = s.commit("first");
    let err = assert_blocked(&out, &token, "config/app.env:2");
    assert!(err.contains("commit blocked"), "{err}");
    assert!(
        s.try_git(&["rev-parse", "--verify", "-q", "HEAD"])
            .stdout
            .is_empty()
    );

    // The fix.
    s.write("config/app.env", "NAME=x\nGITHUB_TOKEN=${GITHUB_TOKEN}\n");
    assert!(s.commit("first").status.success());

    // The allow comment.
    s.write(
        "tests/fixture.env",
        &format!("GITHUB_TOKEN={token} # keyward:allow revoked test token\n"),
    );
    let out = s.commit("fixture");
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn pre_commit_ignores_old_secrets_and_honours_the_ignore_file() {
    let s = Setup::new();
    let old = gh_token(2);
    s.write("a.txt", &format!("one\ntoken={old}\nthree\n"));
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "--no-verify", "-m", "old secret"]);
    install(&s.work(), &["--pre-commit"]);

    // Editing the file around an old secret does not block.
    s.write("a.txt", &format!("zero\none\ntoken={old}\nthree\nfour\n"));
    let out = s.commit("edit");
    assert!(out.status.success(), "{}", stderr(&out));

    // A rename without change adds no lines.
    s.git(&["mv", "a.txt", "b.txt"]);
    let out = s.try_git(&["commit", "-q", "-m", "rename"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A new secret blocks; its fingerprint in .keywardignore lets it through.
    let new = gh_token(3);
    s.write(
        "b.txt",
        &format!("zero\none\ntoken={old}\nthree\nfour\nkey={new}\n"),
    );
    let out = s.commit("new");
    let err = assert_blocked(&out, &new, "b.txt:6");
    assert!(!err.contains("b.txt:3"), "an old line was reported: {err}");
    s.write(
        ".keywardignore",
        &format!("{}  # rotated, harmless\n", fingerprint(&err)),
    );
    let out = s.commit("new");
    assert!(out.status.success(), "{}", stderr(&out));

    // Binary files are not scanned.
    let mut bin = vec![0u8, 1, 2];
    bin.extend(gh_token(4).as_bytes());
    std::fs::write(s.work().join("blob.bin"), bin).unwrap();
    assert!(s.commit("binary").status.success());
}

#[test]
fn pre_commit_scans_the_staged_version_of_a_partially_staged_file() {
    let s = Setup::new();
    s.write("f.txt", "a\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "base"]);
    install(&s.work(), &["--pre-commit"]);
    let token = gh_token(5);

    // Secret staged, then removed from the work tree only: still blocked.
    s.write("f.txt", &format!("a\nt={token}\n"));
    s.git(&["add", "f.txt"]);
    s.write("f.txt", "a\nt=clean\n");
    let out = s.try_git(&["commit", "-q", "-m", "staged secret"]);
    assert_blocked(&out, &token, "f.txt:2");

    // Clean version staged, secret only in the work tree: allowed.
    s.git(&["add", "f.txt"]);
    s.write("f.txt", &format!("a\nt=clean\nt={token}\n"));
    let out = s.try_git(&["commit", "-q", "-m", "clean staged"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // `git commit -a` (a temporary index): the work-tree version is what is committed.
    let out = s.try_git(&["commit", "-q", "-a", "-m", "all"]);
    assert_blocked(&out, &token, "f.txt:3");
}

#[test]
fn pre_receive_rejects_a_push_from_quarantine_and_accepts_the_fix() {
    let s = Setup::new().with_server();
    install(&s.server(), &["--pre-receive"]);
    s.write("README", "hello\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "base"]);
    s.git(&["push", "-q", "origin", "main"]);

    let token = gh_token(6);
    s.write(
        "deploy/secrets.yml",
        &format!("github:\n  token: {token}\n"),
    );
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "add deploy secrets"]);
    let bad = s.git(&["rev-parse", "HEAD"]);
    let out = s.try_git(&["push", "origin", "main"]);
    // The findings prove the hook read the pushed objects while they sat in quarantine.
    let err = assert_blocked(&out, &token, "deploy/secrets.yml:2");
    assert!(err.contains("push rejected"), "{err}");
    assert!(err.contains(&bad[..12]), "no commit in: {err}");
    assert!(err.contains("add deploy secrets"), "no summary in: {err}");
    assert!(err.contains("git rebase -i"), "no history advice in: {err}");
    let server = git_cmd(&s.server(), s.dir.path())
        .args(["cat-file", "-e", &bad])
        .output()
        .unwrap();
    assert!(
        !server.status.success(),
        "the rejected commit reached the server"
    );

    // Fixed by amending: accepted.
    s.write("deploy/secrets.yml", "github:\n  token: ${GITHUB_TOKEN}\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "--amend", "-m", "add deploy config"]);
    let out = s.try_git(&["push", "origin", "main"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // An allow comment: accepted; a deleted branch: accepted.
    s.write(
        "test.env",
        &format!("T={token} # keyward:allow revoked, used in tests\n"),
    );
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "fixture"]);
    let out = s.try_git(&["push", "origin", "main", "main:side"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.try_git(&["push", "origin", ":side"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn pre_receive_time_budget_rejects_or_allows_and_says_which() {
    let s = Setup::new().with_server();
    install(&s.server(), &["--pre-receive"]);
    s.write("a.txt", "clean\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "a"]);
    let out = s.try_git_env(
        &["push", "origin", "main"],
        &[("KEYWARD_HOOK_TIME_BUDGET", "0")],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("time budget") && err.contains("REJECTED"),
        "{err}"
    );
    let out = s.try_git_env(
        &["push", "origin", "main"],
        &[
            ("KEYWARD_HOOK_TIME_BUDGET", "0"),
            ("KEYWARD_HOOK_ON_TIMEOUT", "allow"),
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ALLOWED WITHOUT A COMPLETE SCAN"), "{err}");
}

impl Setup {
    fn try_git_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = git_cmd(&self.work(), self.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    }
}

#[test]
fn pre_push_scans_only_commits_the_remote_lacks() {
    let s = Setup::new().with_server();
    let old = gh_token(7);
    // A secret already on the remote (pushed before the hook existed) does not block.
    s.write("old.txt", &format!("t={old}\n"));
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "old"]);
    s.git(&["push", "-q", "origin", "main"]);
    install(&s.work(), &["--pre-push"]);

    // A new branch with clean commits on top: allowed.
    s.git(&["checkout", "-q", "-b", "feature"]);
    s.write("new.txt", "clean\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "clean"]);
    let out = s.try_git(&["push", "origin", "feature"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A secret in a commit not yet pushed: blocked, on an existing and on a new branch.
    let token = gh_token(8);
    s.write("new.txt", &format!("clean\nt={token}\n"));
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "--no-verify", "-m", "oops"]);
    s.write("other.txt", "more\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "more"]);
    let out = s.try_git(&["push", "origin", "feature"]);
    let err = assert_blocked(&out, &token, "new.txt:2");
    assert!(err.contains("push blocked"), "{err}");
    let out = s.try_git(&["push", "origin", "feature:brand-new"]);
    assert_blocked(&out, &token, "new.txt:2");

    // Deleting a remote branch scans nothing.
    let out = s.try_git(&["push", "origin", ":feature"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn install_chains_an_existing_hook_respects_hooks_path_and_uninstalls_cleanly() {
    let s = Setup::new();
    s.git(&["config", "core.hooksPath", "my-hooks"]);
    let dir = s.work().join("my-hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let theirs = "#!/bin/sh\necho theirs >> \"$(git rev-parse --git-dir)/ran\"\n";
    std::fs::write(dir.join("pre-commit"), theirs).unwrap();
    make_executable(&dir.join("pre-commit"));

    let out = install(&s.work(), &["--pre-commit"]);
    assert!(
        stderr(&out).contains("pre-commit.keyward-chained"),
        "{}",
        stderr(&out)
    );
    // Installing again is a no-op, not a second chain.
    install(&s.work(), &["--pre-commit"]);

    let token = gh_token(9);
    s.write("x.txt", &format!("t={token}\n"));
    let out = s.commit("x");
    assert_blocked(&out, &token, "x.txt:1");
    let ran = std::fs::read_to_string(s.work().join(".git/ran")).unwrap();
    assert_eq!(ran, "theirs\n", "the chained hook did not run");

    let out = keyward()
        .args(["hook", "uninstall", "--repo", s.work().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("pre-commit")).unwrap(),
        theirs
    );
    assert!(!dir.join("pre-commit.keyward-chained").exists());
    // A hook that is not keyward's is left alone.
    let out = keyward()
        .args(["hook", "uninstall", "--repo", s.work().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("left alone"), "{}", stderr(&out));
    assert!(dir.join("pre-commit").exists());
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn pre_commit_framework_runs_the_published_hook() {
    // Installed by scripts/install-test-deps; a missing framework is a failure, not a skip.
    let version = Command::new("pre-commit").arg("--version").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "`pre-commit` is not installed: run scripts/install-test-deps"
    );
    let s = Setup::new();
    // A hook repository holding this repository's .pre-commit-hooks.yaml, at a commit.
    let hooks_repo = s.dir.path().join("hooks-repo");
    std::fs::create_dir(&hooks_repo).unwrap();
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.pre-commit-hooks.yaml");
    std::fs::copy(&yaml, hooks_repo.join(".pre-commit-hooks.yaml")).unwrap();
    for args in [
        &["init", "-q", "-b", "main", "."][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "hooks"],
    ] {
        let out = git_cmd(&hooks_repo, s.dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let rev = git_cmd(&hooks_repo, s.dir.path())
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let rev = String::from_utf8_lossy(&rev.stdout).trim().to_owned();
    s.write(
        ".pre-commit-config.yaml",
        &format!(
            "repos:\n  - repo: {}\n    rev: {rev}\n    hooks:\n      - id: keyward\n",
            hooks_repo.display()
        ),
    );
    // `entry: keyward …` (language: system) finds the binary under test on PATH.
    let bin = PathBuf::from(
        std::env::var_os("KEYWARD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_keyward").into()),
    );
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let framework = |args: &[&str]| {
        let mut c = git_cmd(&s.work(), s.dir.path());
        c.env("PATH", &path)
            .env("PRE_COMMIT_HOME", s.dir.path().join("pc-cache"));
        c.args(args).output().unwrap()
    };
    let mut install = Command::new("pre-commit");
    install
        .current_dir(s.work())
        .env("PATH", &path)
        .env("HOME", s.dir.path())
        .env("PRE_COMMIT_HOME", s.dir.path().join("pc-cache"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("install");
    let out = install.output().unwrap();
    assert!(out.status.success(), "pre-commit install: {}", stderr(&out));

    let token = gh_token(10);
    s.write("app.env", &format!("T={token}\n"));
    s.git(&["add", "-A"]);
    let out = framework(&["commit", "-q", "-m", "secret"]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!out.status.success(), "not blocked: {all}");
    assert!(
        all.contains("app.env:1") && all.contains("github-pat-classic"),
        "{all}"
    );

    s.write("app.env", "T=${T}\n");
    s.git(&["add", "-A"]);
    let out = framework(&["commit", "-q", "-m", "clean"]);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(out.status.success(), "{all}");
}

#[test]
fn pre_commit_checks_merges_and_base64() {
    let s = Setup::new();
    s.write("base.txt", "base\n");
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "-m", "base"]);
    install(&s.work(), &["--pre-commit"]);

    // A merge (no conflict: git runs pre-merge-commit) that brings a secret into main.
    let token = gh_token(11);
    s.git(&["checkout", "-q", "-b", "side"]);
    s.write("side.txt", &format!("t={token}\n"));
    s.git(&["add", "-A"]);
    s.git(&["commit", "-q", "--no-verify", "-m", "side secret"]);
    s.git(&["checkout", "-q", "main"]);
    s.write("main.txt", "main\n");
    assert!(s.commit("main").status.success());
    let out = s.try_git(&["merge", "-q", "--no-edit", "side"]);
    assert_blocked(&out, &token, "side.txt:1");
    s.git(&["merge", "--abort"]);

    // A secret inside base64 selects its rule, and blocks.
    let other = gh_token(12);
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("token={other}"));
    s.write("values.yml", &format!("data: {enc}\n"));
    let out = s.commit("encoded");
    let err = stderr(&out);
    assert!(!out.status.success(), "not blocked: {err}");
    assert!(
        err.contains("values.yml:1") && err.contains("github-pat-classic"),
        "{err}"
    );
}
