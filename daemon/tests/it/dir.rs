use crate::support::{gh_token, json, run_in, stderr, write};
use base64::Engine as _;
use std::process::Command;

fn tree() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn finding_has_exact_location_and_is_redacted_by_default() {
    let t = tree();
    let tok = gh_token(1);
    write(
        t.path(),
        "deploy/env.sh",
        format!("#!/bin/sh\n\nexport  GITHUB_TOKEN={tok}\n"),
    );
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = json(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["rule"], "github-pat-classic");
    assert_eq!(f[0]["severity"], "high");
    assert_eq!(f[0]["validation"], "checksum-ok");
    assert_eq!(f[0]["location"]["source"], "file");
    assert_eq!(f[0]["location"]["path"], "deploy/env.sh");
    assert_eq!(f[0]["location"]["line"], 3);
    assert_eq!(f[0]["location"]["column"], 22);
    assert_eq!(
        f[0]["redacted"],
        format!("{}…{}", &tok[..6], &tok[tok.len() - 2..])
    );
    assert_eq!(
        f[0]["fingerprint"],
        keyward_detectors::Fingerprint::of("github-pat-classic", tok.as_bytes()).as_str()
    );
    assert!(f[0].get("secret").is_none());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&tok),
        "secret leaked into report"
    );
    assert!(!stderr(&out).contains(&tok), "secret leaked into stderr");

    let shown = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "json", "--show-secrets"],
    );
    assert_eq!(json(&shown)[0]["secret"], tok.as_str());
}

#[test]
fn exit_codes() {
    let t = tree();
    write(t.path(), "clean.txt", "nothing here\n");
    assert_eq!(
        run_in(t.path(), &["scan", "dir", "."]).status.code(),
        Some(0)
    );
    write(t.path(), "leak.txt", gh_token(2));
    assert_eq!(
        run_in(t.path(), &["scan", "dir", "."]).status.code(),
        Some(1)
    );
    assert_eq!(
        run_in(t.path(), &["scan", "dir", ".", "--exit-code", "7"])
            .status
            .code(),
        Some(7)
    );
    let missing = run_in(t.path(), &["scan", "dir", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(64));
    assert!(
        stderr(&missing).contains("no/such/dir: no such file or directory"),
        "{}",
        stderr(&missing)
    );
    let bad_flag = run_in(t.path(), &["scan", "dir", "--no-such-flag", "."]);
    assert_eq!(
        bad_flag.status.code(),
        Some(2),
        "clap's usage errors exit 2"
    );
}

#[test]
fn suppression_inline_ignore_file_allowlist_and_baseline() {
    let t = tree();
    let (tok_a, tok_b, tok_c, tok_d) = (gh_token(10), gh_token(11), gh_token(12), gh_token(13));
    write(
        t.path(),
        "a.env",
        format!("TOKEN={tok_a} # keyward:allow test fixture, revoked\n"),
    );
    write(t.path(), "b.env", format!("TOKEN={tok_b}\n"));
    write(t.path(), "vendor/c.env", format!("TOKEN={tok_c}\n"));
    write(t.path(), "d.env", format!("TOKEN={tok_d}\n"));
    let fp_b = keyward_detectors::Fingerprint::of("github-pat-classic", tok_b.as_bytes());
    write(
        t.path(),
        ".keywardignore",
        format!("# accepted risk, ticket SEC-12\n{fp_b}\n"),
    );
    write(
        t.path(),
        ".keyward.toml",
        "[allowlist]\npaths = ['^vendor/']\n",
    );
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    let paths: Vec<_> = json(&out)
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["d.env"]);

    // A baseline made now hides d.env; a new secret still shows.
    let base = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "json", "-o", "../baseline.json"],
    );
    assert_eq!(base.status.code(), Some(1));
    write(t.path(), "e.env", format!("TOKEN={}\n", gh_token(14)));
    // The baseline names secrets, not places: d.env's secret copied elsewhere stays quiet.
    write(t.path(), "moved/d2.env", format!("TOKEN={tok_d}\n"));
    let out = run_in(
        t.path(),
        &[
            "scan",
            "dir",
            ".",
            "-f",
            "json",
            "--baseline",
            "../baseline.json",
        ],
    );
    let paths: Vec<_> = json(&out)
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["e.env"]);

    write(t.path(), ".keywardignore", "not-a-fingerprint\n");
    let bad = run_in(t.path(), &["scan", "dir", "."]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        stderr(&bad).contains(".keywardignore:1: not a fingerprint"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn gitignored_files_are_scanned_unless_asked_and_dot_git_is_skipped() {
    let t = tree();
    write(t.path(), ".gitignore", ".env\n");
    write(t.path(), ".env", format!("GITHUB_TOKEN={}\n", gh_token(20)));
    write(
        t.path(),
        ".git/config",
        format!("token = {}\n", gh_token(21)),
    );
    let all = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    let paths: Vec<_> = json(&all)
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, [".env"]);
    let respect = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "json", "--respect-gitignore"],
    );
    assert_eq!(respect.status.code(), Some(0));
    assert!(json(&respect).is_empty());
}

#[test]
fn binary_files_skipped_unless_asked_invalid_utf8_and_nul_bytes_handled() {
    let t = tree();
    let tok = gh_token(30);
    let mut bin = vec![0u8, 1, 2, 3];
    bin.extend_from_slice(format!("\x00token={tok}\x00").as_bytes());
    write(t.path(), "blob.bin", &bin);
    let mut latin = b"caf\xe9 \xff\xfe\n".to_vec();
    latin.extend_from_slice(b"\xc3\x28 key=");
    latin.extend_from_slice(tok.as_bytes());
    latin.extend_from_slice(b" \x80\n");
    write(t.path(), "latin1.txt", &latin);
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    let f = json(&out);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["path"], "latin1.txt");
    assert_eq!(
        (
            f[0]["location"]["line"].as_u64(),
            f[0]["location"]["column"].as_u64()
        ),
        (Some(2), Some(8))
    );
    let with_bin = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "json", "--scan-binary"],
    );
    // The same token in both files: one finding, found in both places.
    let found = json(&with_bin);
    assert_eq!(found.len(), 1, "{found:?}");
    let paths: Vec<_> = found[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, ["blob.bin", "latin1.txt"]);
}

#[test]
fn hundred_megabyte_single_line_file() {
    let t = tree();
    let tok = gh_token(40);
    let mut big = vec![b'a'; 100 << 20];
    let at = big.len() - 1000;
    big[at..at + tok.len()].copy_from_slice(tok.as_bytes());
    big[at - 1] = b' ';
    big[at + tok.len()] = b' ';
    write(t.path(), "huge.min.js", &big);
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    let f = json(&out);
    assert_eq!(f.len(), 1, "{}", stderr(&out));
    assert_eq!(f[0]["location"]["line"], 1);
    assert_eq!(f[0]["location"]["column"], at as u64 + 1);
}

#[test]
fn unreadable_file_is_reported_and_the_scan_goes_on() {
    let t = tree();
    write(t.path(), "ok.env", format!("TOKEN={}\n", gh_token(50)));
    write(
        t.path(),
        "secret-perms.env",
        format!("TOKEN={}\n", gh_token(51)),
    );
    let locked = t.path().join("secret-perms.env");
    let mut cmd = crate::support::keyward();
    cmd.current_dir(t.path())
        .args(["scan", "dir", ".", "-f", "json"]);
    // Root reads any file, so as root the scan runs as `nobody` to make the file unreadable.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        .starts_with(b"0");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let out = if is_root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(
            t.path().join("ok.env"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let bin =
            std::env::var_os("KEYWARD_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_keyward").into());
        let mut exe = std::path::PathBuf::from(bin);
        // The test binary's directory may not be reachable for `nobody`: copy the binary.
        let copy = std::env::temp_dir().join(format!("keyward-nobody-{}", std::process::id()));
        std::fs::copy(&exe, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe = copy;
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(["scan", "dir", ".", "-f", "json"])
            .current_dir(t.path())
            .output()
            .expect("setpriv (util-linux) runs the scan as nobody");
        let _ = std::fs::remove_file(&exe);
        out
    } else {
        cmd.output().unwrap()
    };
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let f = json(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["location"]["path"], "ok.env");
    let err = stderr(&out);
    assert!(
        err.contains("secret-perms.env") && err.contains("Permission denied"),
        "{err}"
    );
}

#[test]
fn base64_encoded_secret_is_decoded_and_attributed_to_the_blob() {
    let t = tree();
    let tok = gh_token(60);
    let blob = base64::engine::general_purpose::STANDARD.encode(format!("GITHUB_TOKEN={tok}\n"));
    write(
        t.path(),
        "k8s/secret.yaml",
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ci\ndata:\n  env: {blob}\n"),
    );
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    let f = json(&out);
    let gh: Vec<_> = f
        .iter()
        .filter(|f| f["rule"] == "github-pat-classic")
        .collect();
    assert_eq!(gh.len(), 1, "{f:?}");
    assert_eq!(gh[0]["decoded"], "base64");
    assert_eq!(gh[0]["location"]["line"], 6);
    assert_eq!(gh[0]["location"]["column"], 8);
    let off = run_in(t.path(), &["scan", "dir", ".", "-f", "json", "--no-decode"]);
    assert!(json(&off).iter().all(|f| f["rule"] != "github-pat-classic"));
}

#[test]
fn broken_rule_file_names_file_line_rule_and_field() {
    let t = tree();
    write(
        t.path(),
        "my-rules.toml",
        "[[rule]]\nid = \"ok-rule\"\nname = \"OK\"\nseverity = \"low\"\nkeywords = [\"okk_\"]\nregex = '''(?P<secret>okk_[a-z]{8})'''\n\n\
         [[rule]]\nid = \"bad-rule\"\nname = \"Bad\"\nseverity = \"high\"\nkeywords = [\"bad_\"]\nregex = '''(?P<secret>bad_[a-z{8})'''\n\n\
         [[rule]]\nid = \"no-keywords\"\nname = \"Bad too\"\nseverity = \"severe\"\nregex = '''(?P<secret>x)'''\n",
    );
    let out = run_in(t.path(), &["scan", "dir", ".", "--rules", "my-rules.toml"]);
    assert_eq!(out.status.code(), Some(64));
    let err = stderr(&out);
    assert!(
        err.contains("my-rules.toml:13: rule `bad-rule`: field `regex`: does not compile"),
        "{err}"
    );
    assert!(
        err.contains("my-rules.toml:18: rule `no-keywords`: field `severity`"),
        "{err}"
    );
    assert!(
        err.contains("my-rules.toml:15: rule `no-keywords`: field `keywords`: missing"),
        "{err}"
    );
}

#[test]
fn archives_are_opened_by_default_and_not_with_depth_zero() {
    let t = tree();
    let tok = gh_token(40);
    let jar = crate::image::harness::jar(&[(
        "config/app.properties",
        format!("github.token={tok}\n").as_bytes(),
    )]);
    write(t.path(), "lib/app.jar", &jar);
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = json(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0]["location"]["path"],
        "lib/app.jar!config/app.properties"
    );
    let off = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "json", "--archive-depth", "0"],
    );
    assert_eq!(off.status.code(), Some(0), "{}", stderr(&off));
    assert!(json(&off).is_empty());
}
