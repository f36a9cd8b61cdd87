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
    assert_eq!(gh["confidence"], "high");
    assert_eq!(
        gh["confidence_reasons"],
        serde_json::json!(["checksum-verified"])
    );
    let generic = v.iter().find(|r| r["id"] == "generic-password").unwrap();
    assert_eq!(generic["confidence"], "medium");
    assert!(v.len() >= 300, "the built-in pack has {} rules", v.len());
    assert!(
        v.iter()
            .all(|r| r["examples"].as_array().is_some_and(|e| e.len() >= 2)),
        "every built-in rule has examples"
    );
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

#[test]
fn gitleaks_rule_files_load_from_the_command_line_and_the_config() {
    let t = tempfile::tempdir().unwrap();
    write(
        t.path(),
        "rules/.gitleaks.toml",
        r#"title = "team rules"

[[rules]]
id = "acme-api-key"
description = "ACME API key"
regex = '''acme_(?:key|token)\s*=\s*['"]?([a-z0-9]{32})'''
secretGroup = 1
keywords = ["acme_"]

[[rules]]
id = "internal.Token"
description = "Internal token"
regex = '''itk-[A-Za-z0-9]{24}'''
entropy = 3.5
[[rules.allowlists]]
paths = ['''^tests/''']
"#,
    );
    write(
        t.path(),
        "src/app.conf",
        "acme_key = \"q8zr2lmx0vt4kp9wab3c7h1n5d6e2f0g\"\n\
         x = itk-Q8zr2LmX0vT4kP9wAb3C7h1N\n\
         y = itk-aaaaaaaaaaaabbbbbbbbbbbb\n",
    );
    let found = |out: &std::process::Output| -> Vec<(String, u64)> {
        crate::support::json(out)
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_owned(),
                    f["location"]["line"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let expected = [
        ("acme-api-key".to_owned(), 1),
        ("internal-token".to_owned(), 2),
    ];
    let out = run_in(
        t.path(),
        &[
            "scan",
            "dir",
            "src",
            "-f",
            "json",
            "--rules",
            "rules/.gitleaks.toml",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(found(&out), expected, "line 3 is below the rule's entropy");
    let err = stderr(&out);
    assert!(
        err.contains("rules/.gitleaks.toml:15: rule `internal-token`: field `allowlists.paths`"),
        "{err}"
    );
    // The same file named in the config's `[rules] files`.
    write(
        t.path(),
        "keyward.toml",
        "[rules]\nfiles = [\"rules/.gitleaks.toml\"]\n",
    );
    let out = run_in(
        t.path(),
        &[
            "scan",
            "dir",
            "src",
            "-f",
            "json",
            "--config",
            "keyward.toml",
        ],
    );
    assert_eq!(found(&out), expected, "{}", stderr(&out));
}
