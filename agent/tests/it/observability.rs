use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::fixture::{Fixture, my_uid};

fn fixture_with_db_kv_token() -> Fixture {
    let mut fx = Fixture::new(true);
    fx.write_config(&format!(
        "{}\n[profiles.kv]\nkind = \"kv2\"\nmount = \"secret\"\npath = \"planted\"\nallow = {{ uids = [{uid}] }}\n\n\
         [profiles.tok]\nkind = \"token\"\npolicies = [\"default\"]\nallow = {{ uids = [{uid}] }}\n",
        Fixture::db_profile(&[my_uid()]),
        uid = my_uid()
    ));
    fx.start_agent();
    fx
}

#[test]
fn planted_secrets_reach_no_log_ledger_audit_status_or_metrics() {
    let fx = fixture_with_db_kv_token();
    let planted = keyward_tests::random_name("planted-secret-");
    fx.bao.must(
        "POST",
        "secret/data/planted",
        Some(&json!({"data": {"value": planted}})),
    );
    let dir = fx.dir.path().display().to_string();
    let then = format!(
        "printf %s \"$PGPASSWORD\" > {dir}/pgpw; printf %s \"$KEYWARD_KV_VALUE\" > {dir}/kv; printf %s \"$KEYWARD_TOK_TOKEN\" > {dir}/tok; touch {dir}/written; exec sleep 300"
    );
    let script = fx.db_script(&then);
    let mut run = fx
        .run_cmd(&["db", "kv", "tok"], &["sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        fx.wait_file("written", Duration::from_secs(30)),
        "{}",
        fx.agent_log()
    );
    let secrets = [fx.read("pgpw"), fx.read("kv"), fx.read("tok")];
    assert_eq!(secrets[1], planted);
    assert!(secrets.iter().all(|s| s.len() >= 8), "{secrets:?}");

    // While the session lives: ledger, status, metrics.
    let mut seen = Vec::new();
    assert_eq!(fx.ledger_live(), 1);
    assert!(fx.ledger_text().contains("database/creds/build/"));
    seen.push(("ledger", fx.ledger_text()));
    let (code, status, _) = fx.agent_cmd(&["status", "--json"]);
    assert_eq!(code, 0);
    assert!(status.contains("database/creds/build/"), "{status}");
    seen.push(("status", status));
    seen.push(("metrics", fx.metrics()));

    let pid: u32 = fx.read("cmd.pid").parse().unwrap();
    keyward_tests::signal(pid, "TERM");
    run.wait().unwrap();
    seen.push(("audit", std::fs::read_to_string(fx.audit_log()).unwrap()));
    seen.push(("agent log", fx.agent_log()));
    seen.push(("ledger after", fx.ledger_text()));
    seen.push(("ledger after", fx.ledger_text()));
    for (what, text) in &seen {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret reached the {what}:\n{text}"
            );
        }
    }
}

#[test]
fn audit_chain_verifies_and_any_altered_line_fails() {
    let fx = fixture_with_db_kv_token();
    fx.bao.must(
        "POST",
        "secret/data/planted",
        Some(&json!({"data": {"value": "x"}})),
    );
    for _ in 0..2 {
        assert!(
            fx.run_cmd(&["db", "tok"], &["true"])
                .status()
                .unwrap()
                .success()
        );
    }
    let log = fx.audit_log();
    let (code, out, _) = fx.agent_cmd(&["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 8, "{text}");
    let kinds: Vec<String> = fx
        .audit_events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    for k in ["issue", "end", "revoke"] {
        assert!(kinds.iter().any(|x| x == k), "{kinds:?}");
    }
    for i in 0..lines.len() {
        let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        edited[i] = edited[i].replacen("\"seq\":", "\"seq\":1", 1);
        let p = fx.path(&format!("tampered-{i}.jsonl"));
        std::fs::write(&p, edited.join("\n") + "\n").unwrap();
        let (code, out, _) = fx.agent_cmd(&["audit", "verify", p.to_str().unwrap()]);
        assert_eq!(code, 1, "edit of line {} not detected: {out}", i + 1);
        assert!(out.contains(&format!("line {}", i + 1)), "{out}");
    }
}

#[test]
fn status_and_operator_revoke() {
    let fx = fixture_with_db_kv_token();
    let script = fx.db_script("exec sleep 300");
    let mut run = fx
        .run_cmd(&["db"], &["sh", "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        fx.wait_file("ready", Duration::from_secs(30)),
        "{}",
        fx.agent_log()
    );
    let user = fx.read("user");
    let (code, table, _) = fx.agent_cmd(&["status"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("db:lease:database/creds/build/") && table.contains("1 session(s)"),
        "{table}"
    );
    let metrics = fx.metrics();
    for line in [
        "keyward_agent_sessions_active 1",
        "keyward_agent_leases_active 1",
        "keyward_agent_credentials_issued_total{profile=\"db\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let (code, out, err) = fx.agent_cmd(&["revoke", "--all"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("revoked 1 session"), "{out}");
    crate::fixture::assert_all_gone(&fx, &user, Duration::from_secs(1));
    let metrics = fx.metrics();
    assert!(
        metrics.contains("keyward_agent_sessions_active 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyward_agent_credentials_revoked_total{profile=\"db\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyward_agent_revocation_duration_seconds_count 1"),
        "{metrics}"
    );
    let _ = run.kill();
    let _ = run.wait();
}
