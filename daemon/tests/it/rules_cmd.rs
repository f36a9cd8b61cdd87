use crate::support::{keyward, run_in, stderr, write};

#[test]
fn rules_list_shows_builtin_rules() {
    let out = keyward()
        .args(["rules", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let gh = v
        .iter()
        .find(|r| r["id"] == "github-pat-classic")
        .expect("github rule listed");
    assert_eq!(gh["validator"], "github-checksum");
    assert_eq!(gh["source"], "builtin:github.toml");
}

#[test]
fn rules_check_runs_examples_and_negatives() {
    let t = tempfile::tempdir().unwrap();
    let rule = "[[rule]]\nid = \"acme-key\"\nname = \"Acme key\"\nseverity = \"medium\"\nkeywords = [\"acme_\"]\n\
                regex = '''\\b(?P<secret>acme_[A-Za-z0-9]{24})\\b'''\n";
    write(
        t.path(),
        "good.toml",
        format!(
            "{rule}examples = [\"k = acme_Q8zR2LmX0vT4kP9wAb3CdE5f\"]\nnegatives = [\"acme_short\"]\n"
        ),
    );
    let ok = run_in(t.path(), &["rules", "check", "good.toml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "1 rules OK (2 examples and negatives checked).\n"
    );
    write(
        t.path(),
        "bad.toml",
        format!(
            "{rule}examples = [\"acme_short\"]\nnegatives = [\"k = acme_Q8zR2LmX0vT4kP9wAb3CdE5f\"]\n"
        ),
    );
    let bad = run_in(t.path(), &["rules", "check", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(64));
    let err = stderr(&bad);
    assert!(
        err.contains("bad.toml: rule `acme-key`: example #1 does not match"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml: rule `acme-key`: negative #1 matches"),
        "{err}"
    );
}

#[test]
fn config_example_is_valid_and_check_reports_errors() {
    let t = tempfile::tempdir().unwrap();
    let ex = keyward().args(["config", "example"]).output().unwrap();
    write(t.path(), "keyward.toml", &ex.stdout);
    let ok = run_in(t.path(), &["config", "check", "keyward.toml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    write(
        t.path(),
        "broken.toml",
        "[scan]\ndecode-base64 = true\nmax-file-sise = 10\n",
    );
    let bad = run_in(t.path(), &["config", "check", "broken.toml"]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        stderr(&bad).contains("broken.toml:3: unknown field `max-file-sise`"),
        "{}",
        stderr(&bad)
    );
}
