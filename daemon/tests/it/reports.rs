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

    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif-schema-2.1.0.json"
    );
    let check = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             schema=json.load(open(sys.argv[1])); doc=json.load(open(sys.argv[2]))\n\
             jsonschema.Draft7Validator.check_schema(schema)\n\
             errs=list(jsonschema.Draft7Validator(schema).iter_errors(doc))\n\
             [print(e.message, list(e.path)) for e in errs]\n\
             sys.exit(1 if errs else 0)",
            schema,
        ])
        .arg(&sarif_path)
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
