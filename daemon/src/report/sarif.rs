//! SARIF 2.1.0 (OASIS), in the subset GitHub code scanning reads.

use super::ReportContext;
use crate::finding::Finding;
use keyward_detectors::Severity;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub maps `security-severity` (0.0–10.0) to critical/high/medium/low.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "1.0",
    }
}

pub(super) fn log(findings: &[Finding], ctx: &ReportContext<'_>) -> Value {
    // Only rules that have results, in id order, so `ruleIndex` is stable.
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    for f in findings {
        rule_index.insert(&f.rule, 0);
    }
    let mut rules = Vec::new();
    for (i, (id, slot)) in rule_index.iter_mut().enumerate() {
        *slot = i;
        let (name, desc, sev) = match ctx.rules.get(id) {
            Some(r) => (
                r.name().to_owned(),
                r.description().to_owned(),
                r.severity(),
            ),
            None => {
                let f = findings
                    .iter()
                    .find(|f| f.rule == *id)
                    .expect("rule has a finding");
                (f.rule_name.clone(), String::new(), f.severity)
            }
        };
        let full = if desc.is_empty() { name.clone() } else { desc };
        rules.push(json!({
            "id": id,
            "name": id,
            "shortDescription": {"text": name},
            "fullDescription": {"text": full},
            "defaultConfiguration": {"level": level(sev)},
            "help": {"text": "Revoke or rotate the credential, then remove it from the file (and from history). To accept it, add `keyward:allow` with a reason on its line, or add its fingerprint to .keywardignore."},
            "properties": {"tags": ["security", "secret"], "security-severity": security_severity(sev)},
        }));
    }
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let l = &f.location;
            let uri = l
                .path
                .clone()
                .or_else(|| l.image.clone())
                .unwrap_or_else(|| l.source.as_str().to_owned());
            let mut text = format!("{} found: {}", f.rule_name, f.redacted);
            if let Some(c) = &l.commit {
                text.push_str(&format!(" (commit {c})"));
            }
            if let Some(layer) = &l.layer {
                text.push_str(&format!(" (layer {layer})"));
            }
            let mut props =
                json!({"fingerprint": f.fingerprint.as_str(), "validation": f.validation});
            if let Some(c) = &l.commit {
                props["commit"] = json!(c);
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index[f.rule.as_str()],
                "level": level(f.severity),
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": {"startLine": l.line.max(1), "startColumn": l.column.max(1)}
                    }
                }],
                "partialFingerprints": {"keyward/v1": f.fingerprint.as_str()},
                "properties": props,
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyward",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/keyward",
                "rules": rules,
            }},
            "results": results,
        }]
    })
}
