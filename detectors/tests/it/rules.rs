use keyward_detectors::{RuleSet, Scanner};
use std::sync::Arc;

fn scanner() -> Scanner {
    Scanner::new(Arc::new(RuleSet::builtin().expect("built-in rules load")))
}

/// Runs every rule's `examples` and `negatives` through the full scanner (all rules, base64
/// decoding on), and reports every failure at once.
#[test]
fn every_rule_example_matches_and_every_negative_does_not() {
    let scanner = scanner();
    let mut failures = Vec::new();
    for rule in scanner.rules().rules() {
        let id = rule.id().as_str();
        for (i, ex) in rule.examples().iter().enumerate() {
            let found = scanner.scan(ex.as_bytes());
            let mine: Vec<_> = found.iter().filter(|m| m.rule.as_str() == id).collect();
            if mine.is_empty() {
                let others: Vec<_> = found.iter().map(|m| m.rule.as_str()).collect();
                failures.push(format!(
                    "{id}: example #{i} did not match (other rules: {others:?})"
                ));
            }
        }
        for (i, neg) in rule.negatives().iter().enumerate() {
            let found = scanner.scan(neg.as_bytes());
            if found.iter().any(|m| m.rule.as_str() == id) {
                failures.push(format!("{id}: negative #{i} matched"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_rule_has_two_examples_and_a_negative() {
    let rules = RuleSet::builtin().unwrap();
    let thin: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| r.examples().len() < 2 || r.negatives().is_empty())
        .map(|r| r.id().to_string())
        .collect();
    assert!(
        thin.is_empty(),
        "rules with < 2 examples or no negative: {thin:?}"
    );
}
