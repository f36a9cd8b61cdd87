use keyward_detectors::{Error, ErrorKind, RuleSet, Scanner, Severity};
use std::sync::Arc;

/// A team's `.gitleaks.toml`. Line numbers matter: errors and warnings are checked by line.
const GITLEAKS: &str = r#"title = "team rules"

[[allowlists]]
description = "global: vendored code and sandbox keys"
paths = ['''(^|/)vendor/''']
stopwords = ["sandbox"]

# secretGroup picks group 2; the id is not keyward syntax.
[[rules]]
id = "Zeta_Token"
description = "Zeta API token"
regex = '''(?i)(zeta)[_-]token\s*[:=]\s*"?([a-f0-9]{32})'''
secretGroup = 2
keywords = ["ZETA"]
tags = ["api", "zeta"]

# No groups: the secret is the whole match.
[[rules]]
id = "plk-key"
description = "PLK key"
regex = '''plk_[A-Za-z0-9]{20}\b'''
keywords = ["plk_"]

# Entropy: gitleaks drops a secret whose entropy is <= 4.0.
[[rules]]
id = "ent-key"
regex = '''ent_key=([A-Za-z0-9]{16,24})'''
entropy = 4.0
keywords = ["ent_key"]

# No keywords: derived from the regex ("nkt_", "nkx_"); no secretGroup and two groups: the
# first non-empty group is the secret.
[[rules]]
id = "nk-token"
description = "NK token"
regex = '''\b(?:nkt_([a-z0-9]{20})|nkx_([A-Z0-9]{20}))\b'''

# Allowlist regex (on the secret) and stopwords; paths are not translatable (a warning).
[[rules]]
id = "pwd-token"
description = "Password token"
regex = '''pwd_token\s*=\s*([A-Za-z0-9]{12,})'''
keywords = ["pwd_token"]
[[rules.allowlists]]
regexes = ['''^TEST''']
stopwords = ["INTERNAL"]
paths = ['''_test\.go$''']

# Path-only: keyward matches content, not file names.
[[rules]]
id = "p12-file"
description = "PKCS#12 file"
path = '''\.p12$'''
"#;

fn load(text: &str, disable: &[&str]) -> Result<RuleSet, Error> {
    RuleSet::builder()
        .builtin(false)
        .add_source(".gitleaks.toml", text)
        .disable(disable.iter().copied())
        .build()
}

/// (file, line, rule, field) of each single error.
fn where_(e: &Error) -> Vec<(String, usize, String, &'static str)> {
    e.errors()
        .into_iter()
        .map(|e| match e.kind() {
            ErrorKind::Rule {
                file,
                line,
                rule,
                field,
                ..
            } => (file.clone(), *line, rule.clone(), *field),
            other => panic!("not a rule error: {other:?}"),
        })
        .collect()
}

/// A path-only rule cannot be translated: the file does not load, and the one error names
/// the file, the line of the `path` key and the rule.
#[test]
fn path_only_rule_is_an_error_naming_file_and_line() {
    let err = load(GITLEAKS, &[]).unwrap_err();
    assert_eq!(
        where_(&err),
        [(
            ".gitleaks.toml".to_owned(),
            53,
            "p12-file".to_owned(),
            "path"
        )]
    );
    assert!(
        err.to_string()
            .starts_with(".gitleaks.toml:53: rule `p12-file`: field `path`: path-only rule"),
        "{err}"
    );
}

#[test]
fn gitleaks_rules_load_and_find_what_gitleaks_finds() {
    let rules = load(GITLEAKS, &["p12-file"]).expect("loads without the path-only rule");
    let ids: Vec<_> = rules.rules().iter().map(|r| r.id().as_str()).collect();
    assert_eq!(
        ids,
        ["zeta-token", "plk-key", "ent-key", "nk-token", "pwd-token"]
    );
    let zeta = rules.get("zeta-token").unwrap();
    assert_eq!(zeta.severity(), Severity::Medium);
    assert_eq!(zeta.name(), "Zeta API token");
    assert_eq!(zeta.keywords(), ["zeta"]);
    assert_eq!(
        zeta.description(),
        "Zeta API token (gitleaks tags: api, zeta)"
    );
    assert_eq!(rules.get("ent-key").unwrap().name(), "ent-key");
    assert_eq!(rules.get("nk-token").unwrap().keywords(), ["nkt_", "nkx_"]);

    // Warnings: the renamed id, and the allowlist paths (global and the rule's).
    let warnings: Vec<_> = rules.warnings().iter().flat_map(where_).collect();
    let f = ".gitleaks.toml".to_owned();
    assert_eq!(
        warnings,
        [
            (f.clone(), 3, String::new(), "allowlists.paths"),
            (f.clone(), 9, "zeta-token".to_owned(), "id"),
            (f.clone(), 44, "pwd-token".to_owned(), "allowlists.paths"),
        ]
    );

    let input = [
        // 1
        r#"ZETA_TOKEN = "3f9a8c2e7b6d4f1a0e5c9b8d7a6f3e21""#,
        "zeta-token: 3f9a8c2e7b6d4f1a0e5c9b8d7a6f3e2", // 31 hex: no match
        "key plk_Q8z1LmX0vT4kP9wAb3C7 here",           // whole match
        "plk_SandboxQ8z1LmX0vT4kP",                    // global stopword
        "ent_key=Q8z1LmX0vT4kP9wAb3C7",                // 20 distinct: 4.32 bits
        "ent_key=Q8z1LmX0vT4kP9wA",                    // 16 distinct: exactly 4.0
        "ent_key=q1w2q1w2q1w2e3r4",                    // 2.81 bits
        "nkt_r7kqx2mvn9pbt4wlc8zs nkx_R7KQX2MVN9PBT4WLC8ZS", // group 1, then group 2
        "pwd_token = R7kQx2mVn9Pb",                    // 10
        "pwd_token = TESTx2mVn9PbR",                   // allowlist regex
        "pwd_token=aBInternalz93Kq",                   // stopword, any case
    ]
    .join("\n");
    let scanner = Scanner::builder(Arc::new(rules))
        .decode_base64(false)
        .build();
    let found: Vec<_> = scanner
        .scan(input.as_bytes())
        .iter()
        .map(|m| {
            (
                m.rule.as_str().to_owned(),
                m.line,
                String::from_utf8(m.secret.expose().clone()).unwrap(),
            )
        })
        .collect();
    let expect = |rule: &str, line: u64, secret: &str| (rule.to_owned(), line, secret.to_owned());
    assert_eq!(
        found,
        [
            expect("zeta-token", 1, "3f9a8c2e7b6d4f1a0e5c9b8d7a6f3e21"),
            expect("plk-key", 3, "plk_Q8z1LmX0vT4kP9wAb3C7"),
            expect("ent-key", 5, "Q8z1LmX0vT4kP9wAb3C7"),
            expect("nk-token", 8, "r7kqx2mvn9pbt4wlc8zs"),
            expect("nk-token", 8, "R7KQX2MVN9PBT4WLC8ZS"),
            expect("pwd-token", 9, "R7kQx2mVn9Pb"),
        ]
    );
}

/// gitleaks' `secretGroup = 0` on a regex with groups: the first group that matched something,
/// else the whole match.
#[test]
fn unset_secret_group_falls_back_to_the_whole_match() {
    let rules = load(
        r#"
[[rules]]
id = "opt-group"
regex = '''qvk_[a-z0-9]{12}(-[0-9]{4})?'''
"#,
        &[],
    )
    .unwrap();
    let scanner = Scanner::builder(Arc::new(rules))
        .decode_base64(false)
        .build();
    let secrets: Vec<_> = scanner
        .scan(b"qvk_r7kqx2mvn9pb-8412 qvk_t4wlc8zsd3hf")
        .iter()
        .map(|m| String::from_utf8(m.secret.expose().clone()).unwrap())
        .collect();
    assert_eq!(secrets, ["-8412", "qvk_t4wlc8zsd3hf"]);
}

#[test]
fn bad_gitleaks_regex_names_file_line_and_rule() {
    let err = load(
        r#"title = "x"

[[rules]]
id = "broken"
description = "Broken"
keywords = ["brk_"]
regex = '''brk_([a-z'''

[[rules]]
id = "too-far"
regex = '''tfr_([a-z]{8})'''
secretGroup = 2

[[rules]]
id = "no-kw"
regex = '''nkw_(['''
"#,
        &[],
    )
    .unwrap_err();
    let f = ".gitleaks.toml".to_owned();
    assert_eq!(
        where_(&err),
        [
            (f.clone(), 7, "broken".to_owned(), "regex"),
            (f.clone(), 12, "too-far".to_owned(), "secretGroup"),
            // Keywords cannot be derived from a broken regex: only the regex is reported.
            (f, 16, "no-kw".to_owned(), "regex"),
        ]
    );
    assert!(
        err.to_string()
            .contains(".gitleaks.toml:7: rule `broken`: field `regex`: does not compile"),
        "{err}"
    );
}

#[test]
fn untranslatable_detection_parts_are_errors() {
    let err = load(
        r#"[extend]
useDefault = true

[[rules]]
id = "needs-kw"
regex = '''[a-f0-9]{40}'''

[[rules]]
id = "with-path"
regex = '''wpt_[a-z0-9]{16}'''
path = '''\.env$'''
"#,
        &[],
    )
    .unwrap_err();
    let f = ".gitleaks.toml".to_owned();
    assert_eq!(
        where_(&err),
        [
            (f.clone(), 1, String::new(), "extend"),
            (f.clone(), 4, "needs-kw".to_owned(), "keywords"),
            (f, 11, "with-path".to_owned(), "path"),
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains(".gitleaks.toml:1: field `extend`: [extend]"),
        "{text}"
    );
    assert!(
        text.contains("no keywords and none can be derived from the regex; add keywords = [...]"),
        "{text}"
    );
}

#[test]
fn and_conditions_and_other_targets_are_warnings() {
    let rules = load(
        r#"
[[rules]]
id = "and-rule"
regex = '''andr_([a-z0-9]{16})'''
[rules.allowlist]
condition = "AND"
regexes = ['''^x''']
stopwords = ["abc"]

[[rules]]
id = "line-rule"
regex = '''linr_([a-z0-9]{16})'''
[[rules.allowlists]]
regexTarget = "line"
regexes = ['''nosecret''']
"#,
        &[],
    )
    .unwrap();
    let warnings: Vec<_> = rules.warnings().iter().flat_map(where_).collect();
    let f = ".gitleaks.toml".to_owned();
    assert_eq!(
        warnings,
        [
            (f.clone(), 5, "and-rule".to_owned(), "allowlists.condition"),
            (f, 13, "line-rule".to_owned(), "allowlists.regexTarget"),
        ]
    );
    // Ignored allowlists suppress nothing.
    let scanner = Scanner::builder(Arc::new(rules))
        .decode_base64(false)
        .build();
    assert_eq!(
        scanner
            .scan(b"andr_xabc2mvn9pbt4wlc linr_r7kqx2mvn9pbt4wl nosecret")
            .len(),
        2
    );
}

/// A native rule file is untouched by the translation, even when it is mixed with a gitleaks one.
#[test]
fn native_and_gitleaks_files_load_together() {
    let rules = RuleSet::builder()
        .builtin(false)
        .add_source(
            "native.toml",
            r#"
[[rule]]
id = "demo-token"
name = "Demo token"
severity = "high"
keywords = ["dmo_"]
regex = '\b(?P<secret>dmo_[a-zA-Z0-9]{20})\b'
"#,
        )
        .add_source(
            ".gitleaks.toml",
            "[[rules]]\nid = \"plk-key\"\nregex = '''plk_[A-Za-z0-9]{20}'''\n",
        )
        .build()
        .unwrap();
    assert_eq!(rules.len(), 2);
    assert!(rules.warnings().is_empty());
    assert_eq!(rules.get("plk-key").unwrap().keywords(), ["plk_"]);
}
