use crate::support::{gh_token, run_in, stderr, write};
use std::process::Command;

fn tree_with_two_findings() -> (tempfile::TempDir, String, String) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (gh_token(80), gh_token(81));
    write(
        t.path(),
        "src/config.py",
        format!("import os\nTOKEN = \"{a}\"\n"),
    );
    write(
        t.path(),
        "deploy/run.sh",
        format!("curl -u bot:{b} https://x\n"),
    );
    (t, a, b)
}

#[test]
fn jsonl_has_one_object_per_line_in_path_order() {
    let (t, _, _) = tree_with_two_findings();
    let out = run_in(t.path(), &["scan", "dir", ".", "-f", "jsonl"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let paths: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["location"]["path"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(paths, ["deploy/run.sh", "src/config.py"]);
}

#[test]
fn text_report_names_place_rule_and_redacted_secret_only() {
    let (t, a, _) = tree_with_two_findings();
    let out = run_in(t.path(), &["scan", "dir", "src", "-f", "text"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let fp = keyward_detectors::Fingerprint::of("github-pat-classic", a.as_bytes());
    let expected = format!(
        "HIGH     GitHub personal access token (classic)  src/config.py:2:10\n\
         \x20        secret       {}…{}\n\
         \x20        rule         github-pat-classic (validation: checksum-ok)\n\
         \x20        confidence   high (checksum-verified)\n\
         \x20        fingerprint  {fp}\n\n",
        &a[..6],
        &a[a.len() - 2..]
    );
    assert_eq!(text, expected);
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    let (t, a, b) = tree_with_two_findings();
    let out = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "sarif", "-o", "out.sarif"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sarif_path = t.path().join("out.sarif");
    let text = std::fs::read_to_string(&sarif_path).unwrap();
    assert!(
        !text.contains(&a) && !text.contains(&b),
        "secrets must not be in SARIF"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ruleId"], "github-pat-classic");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "deploy/run.sh"
    );
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert_eq!(
        v["runs"][0]["tool"]["driver"]["rules"][0]["id"],
        "github-pat-classic"
    );

    let schema = SARIF_SCHEMA;
    validate_sarif(&sarif_path);
    // A document that breaks the schema is caught, so the check above can fail.
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("catastrophic");
    std::fs::write(&sarif_path, serde_json::to_string(&broken).unwrap()).unwrap();
    let check2 = Command::new("python3")
        .args(["-c", "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1])); doc=json.load(open(sys.argv[2]))\nsys.exit(1 if list(jsonschema.Draft7Validator(schema).iter_errors(doc)) else 0)", schema])
        .arg(&sarif_path)
        .output()
        .unwrap();
    assert!(
        !check2.status.success(),
        "the schema check must reject a bad level"
    );
}

const SARIF_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sarif-schema-2.1.0.json"
);

/// Validates a SARIF file against the 2.1.0 schema with Python's jsonschema.
fn validate_sarif(path: &std::path::Path) {
    let check = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             schema=json.load(open(sys.argv[1])); doc=json.load(open(sys.argv[2]))\n\
             jsonschema.Draft7Validator.check_schema(schema)\n\
             errs=list(jsonschema.Draft7Validator(schema).iter_errors(doc))\n\
             [print(e.message, list(e.path)) for e in errs]\n\
             sys.exit(1 if errs else 0)",
            SARIF_SCHEMA,
        ])
        .arg(path)
        .output()
        .expect("python3 runs");
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        !err.contains("No module named 'jsonschema'"),
        "Python's jsonschema is missing: install it with `pip install jsonschema` (scripts/test does)"
    );
    assert!(
        check.status.success(),
        "SARIF does not validate:\n{}{err}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn sarif_has_one_result_per_secret_with_related_locations() {
    let t = tempfile::tempdir().unwrap();
    let a = gh_token(82);
    for p in ["b/one.env", "a/two.env", "c/three.env"] {
        write(t.path(), p, format!("X=1\nTOKEN={a}\n"));
    }
    let out = run_in(
        t.path(),
        &["scan", "dir", ".", "-f", "sarif", "-o", "out.sarif"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let sarif_path = t.path().join("out.sarif");
    validate_sarif(&sarif_path);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_path).unwrap()).unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:#?}");
    let r = &results[0];
    let uri = |l: &serde_json::Value| {
        l["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(uri(&r["locations"][0]), "a/two.env");
    let related: Vec<String> = r["relatedLocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(uri)
        .collect();
    assert_eq!(related, ["b/one.env", "c/three.env"]);
    assert_eq!(r["relatedLocations"][0]["id"], 1);
    assert_eq!(
        r["relatedLocations"][1]["physicalLocation"]["region"]["startLine"],
        2
    );
    let fp = keyward_detectors::Fingerprint::of("github-pat-classic", a.as_bytes());
    assert_eq!(r["partialFingerprints"]["keyward/v1"], fp.as_str());
    assert_eq!(r["properties"]["occurrences"], 3);
    assert_eq!(r["properties"]["confidence"], "high");

    // `--per-location`: one result per place, no related locations.
    let out = run_in(
        t.path(),
        &[
            "scan",
            "dir",
            ".",
            "-f",
            "sarif",
            "--per-location",
            "-o",
            "per.sarif",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    validate_sarif(&t.path().join("per.sarif"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("per.sarif")).unwrap())
            .unwrap();
    let results = v["runs"][0]["results"].as_array().unwrap();
    let uris: Vec<String> = results.iter().map(|r| uri(&r["locations"][0])).collect();
    assert_eq!(uris, ["a/two.env", "b/one.env", "c/three.env"]);
    assert!(results.iter().all(|r| r.get("relatedLocations").is_none()));
}

#[test]
fn fixtures_are_found_at_low_confidence_and_hidden_by_default() {
    let t = tempfile::tempdir().unwrap();
    let (real, fixture) = (gh_token(83), gh_token(84));
    write(t.path(), "deploy/app.env", format!("GITHUB_TOKEN={real}\n"));
    // A generic password in a test file, inside a test function: low.
    write(
        t.path(),
        "tests/login_test.py",
        "def test_login():\n    password = \"Vq8#kTz2pLw9xR\"\n    assert login(password)\n",
    );
    // A checksummed token in a fixture: high, less one step for the path.
    write(
        t.path(),
        "tests/fixtures/gh.json",
        format!("{{\"token\": \"{fixture}\"}}\n"),
    );
    let shown = |args: &[&str]| -> Vec<(String, String, Vec<String>)> {
        let mut all = vec!["scan", "dir", ".", "-f", "json"];
        all.extend_from_slice(args);
        let out = run_in(t.path(), &all);
        crate::support::json(&out)
            .iter()
            .map(|f| {
                (
                    f["location"]["path"].as_str().unwrap().to_owned(),
                    f["confidence"].as_str().unwrap().to_owned(),
                    f["reasons"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        shown(&[]),
        [
            (
                "deploy/app.env".into(),
                "high".into(),
                s(&["checksum-verified"])
            ),
            (
                "tests/fixtures/gh.json".into(),
                "medium".into(),
                s(&["checksum-verified", "test-path"])
            ),
        ]
    );
    assert_eq!(
        shown(&["--confidence", "low"])[2],
        (
            "tests/login_test.py".into(),
            "low".into(),
            s(&["keyword-and-value", "test-code", "test-path"])
        )
    );
    assert_eq!(shown(&["--confidence", "high"]).len(), 1);
    let out = run_in(
        t.path(),
        &["scan", "dir", ".", "--summary", "--confidence", "high"],
    );
    assert!(
        stderr(&out)
            .contains(": 1 finding, 1 high; 2 less confident hidden (--confidence low shows them)"),
        "{}",
        stderr(&out)
    );
}
