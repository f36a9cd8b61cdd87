//! packaging/prometheus: the alert rules pass `promtool check` and their unit tests, the example
//! configs are valid, and an alert travels Prometheus -> Alertmanager -> webhook.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use keyward_tests::prometheus::{
    Alertmanager, MetricsEndpoint, Prometheus, WebhookReceiver, run_tool,
};

/// `packaging/prometheus/<name>` in this checkout.
fn packaging(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    let p = std::fs::canonicalize(&p).expect("packaging/prometheus exists");
    p.join(name).to_string_lossy().into_owned()
}

fn assert_tool(bins: &[&str], args: &[&str]) {
    let (ok, out) = run_tool(bins, args);
    assert!(ok, "{} {} failed:\n{out}", bins[0], args.join(" "));
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    assert_tool(
        &["promtool"],
        &["check", "rules", &packaging("keyward-alerts.yml")],
    );
    assert_tool(
        &["promtool"],
        &["test", "rules", &packaging("keyward-alerts.test.yml")],
    );
}

#[test]
fn example_configs_are_valid() {
    // Checks keyward-alerts.yml too: the example loads it by a path relative to itself.
    assert_tool(
        &["promtool"],
        &["check", "config", &packaging("prometheus.yml")],
    );
    // NOTE: amtool is required, not optional: Debian's prometheus-alertmanager ships it.
    assert_tool(
        &["amtool"],
        &["check-config", &packaging("alertmanager.yml")],
    );
}

/// The daemon's new-findings counter, pre-initialised to 0 as `keyward serve` exports it, with
/// the git/critical/high-confidence series at `critical_git`.
fn metrics(critical_git: u32) -> String {
    let mut text = String::from(
        "# HELP keyward_findings_new_total New findings.\n\
         # TYPE keyward_findings_new_total counter\n",
    );
    for severity in ["critical", "high", "medium", "low"] {
        for kind in ["git", "image", "file"] {
            for confidence in ["low", "medium", "high"] {
                let v = if (severity, kind, confidence) == ("critical", "git", "high") {
                    critical_git
                } else {
                    0
                };
                text += &format!(
                    "keyward_findings_new_total{{confidence=\"{confidence}\",severity=\"{severity}\",source_kind=\"{kind}\"}} {v}\n"
                );
            }
        }
    }
    text + "# TYPE keyward_store_up gauge\nkeyward_store_up 1\n"
}

#[test]
fn new_critical_finding_reaches_the_webhook() {
    let endpoint = MetricsEndpoint::start(&metrics(0));
    let webhook = WebhookReceiver::start();
    let am = Alertmanager::start(&webhook.url());
    let rules = [PathBuf::from(packaging("keyward-alerts.yml"))];
    let prom = Prometheus::start(&endpoint.addr(), &rules, Some(&am.addr()));

    // `increase` needs the 0 before the 1: wait for two scrapes of the counter at 0.
    let scraped = keyward_tests::wait_for(Duration::from_secs(30), || {
        let r = prom.query(
            r#"count_over_time(keyward_findings_new_total{confidence="high",severity="critical",source_kind="git"}[1m]) >= 2"#,
        );
        (!r.as_array()?.is_empty()).then_some(())
    });
    assert!(scraped.is_some(), "not scraped; log:\n{}", prom.log());
    assert!(
        prom.alerts()
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["labels"]["alertname"] != "KeywardNewCriticalFinding"),
        "alert before any finding: {}",
        prom.alerts()
    );

    endpoint.set(&metrics(1));
    let flipped = Instant::now();
    let alert = webhook.wait_for_alert("KeywardNewCriticalFinding", Duration::from_secs(30));
    let took = flipped.elapsed();
    let Some(alert) = alert else {
        panic!(
            "no KeywardNewCriticalFinding at the webhook 30 s after the flip.\n\
             webhook got: {:?}\nprometheus alerts: {}\nprometheus log:\n{}\nalertmanager log:\n{}",
            webhook.received(),
            prom.alerts(),
            prom.log(),
            am.log()
        );
    };
    eprintln!("KeywardNewCriticalFinding reached the webhook {took:?} after the flip");
    let labels = &alert["labels"];
    assert_eq!(labels["severity"], "page", "{alert}");
    assert_eq!(labels["finding_severity"], "critical", "{alert}");
    assert_eq!(labels["source_kind"], "git", "{alert}");
    assert_eq!(labels["job"], "keyward", "{alert}");
    assert_eq!(labels["instance"], endpoint.addr().as_str(), "{alert}");
    assert_eq!(
        alert["annotations"]["summary"], "New critical secret found in a git source",
        "{alert}"
    );
    // Only the critical/git series moved: nothing else pages.
    let names: Vec<_> = webhook
        .received()
        .iter()
        .filter_map(|b| b["alerts"].as_array())
        .flatten()
        .map(|a| a["labels"]["alertname"].clone())
        .collect();
    assert!(
        names.iter().all(|n| n == "KeywardNewCriticalFinding"),
        "{names:?}"
    );
}
