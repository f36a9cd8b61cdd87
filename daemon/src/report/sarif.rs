//! SARIF 2.1.0 (OASIS), in the subset GitHub code scanning reads.

use super::ReportContext;
use crate::finding::{Finding, Location};
use crate::group::SecretFinding;
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

/// Related places listed per result; the message says how many there are in all.
const MAX_RELATED: usize = 100;

pub(super) fn log(secrets: &[SecretFinding], ctx: &ReportContext<'_>) -> Value {
    // Only rules that have results, in id order, so `ruleIndex` is stable.
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    for s in secrets {
        rule_index.insert(&s.first.rule, 0);
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
                let f = &secrets
                    .iter()
                    .find(|s| s.first.rule == *id)
                    .expect("rule has a finding")
                    .first;
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
    let mut results = Vec::new();
    for s in secrets {
        if ctx.per_location {
            for l in &s.locations {
                results.push(result(s, l, &[], &rule_index));
            }
        } else {
            results.push(result(s, &s.first.location, &s.locations[1..], &rule_index));
        }
    }
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

/// One result: the secret at `at`, with `related` places.
fn result(
    s: &SecretFinding,
    at: &Location,
    related: &[Location],
    rule_index: &BTreeMap<&str, usize>,
) -> Value {
    let f: &Finding = &s.first;
    let mut text = format!("{} found: {}", f.rule_name, f.redacted);
    if let Some(c) = &at.commit {
        text.push_str(&format!(" (commit {c})"));
    }
    if let Some(layer) = &at.layer {
        text.push_str(&format!(" (layer {layer})"));
    }
    if !related.is_empty() {
        let n = related.len();
        text.push_str(&format!(
            "; also at {n} more place{}",
            if n == 1 { "" } else { "s" }
        ));
        if n > MAX_RELATED {
            text.push_str(&format!(" (the first {MAX_RELATED} are listed)"));
        }
    }
    let mut props = json!({
        "fingerprint": f.fingerprint.as_str(),
        "validation": f.validation,
        "confidence": s.confidence().as_str(),
        "reasons": s.assessment.reasons.names().collect::<Vec<_>>(),
        "occurrences": s.locations.len(),
    });
    if let Some(c) = &at.commit {
        props["commit"] = json!(c);
    }
    if let Some(h) = s.in_head() {
        props["inHead"] = json!(h);
    }
    let mut r = json!({
        "ruleId": f.rule,
        "ruleIndex": rule_index[f.rule.as_str()],
        "level": level(f.severity),
        "message": {"text": text},
        "locations": [physical(at)],
        "partialFingerprints": {"keyward/v1": f.fingerprint.as_str()},
        "properties": props,
    });
    if !related.is_empty() {
        r["relatedLocations"] = related
            .iter()
            .take(MAX_RELATED)
            .enumerate()
            .map(|(i, l)| {
                let mut loc = physical(l);
                loc["id"] = json!(i + 1);
                let origin = match (&l.commit, l.layer_index) {
                    (Some(c), _) => format!("The same secret, in commit {c}."),
                    (None, Some(i)) => format!("The same secret, in layer #{i}."),
                    (None, None) => "The same secret.".to_owned(),
                };
                loc["message"] = json!({"text": origin});
                loc
            })
            .collect();
    }
    r
}

/// A SARIF `location` with a physical location: the path (or image, or input kind), line and
/// column.
fn physical(l: &Location) -> Value {
    let uri = l
        .path
        .clone()
        .or_else(|| l.image.clone())
        .unwrap_or_else(|| l.source.as_str().to_owned());
    json!({
        "physicalLocation": {
            "artifactLocation": {"uri": uri},
            "region": {"startLine": l.line.max(1), "startColumn": l.column.max(1)}
        }
    })
}
