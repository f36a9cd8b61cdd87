use keyward_tests::{JwtIssuer, write_file};
use serde_json::json;
use std::process::Stdio;

use crate::fixture::{Fixture, my_uid};

#[test]
fn caller_outside_the_allow_list_is_denied_and_audited() {
    let mut fx = Fixture::new(true);
    let other = my_uid() + 4242;
    fx.write_config(&Fixture::db_profile(&[other]));
    fx.start_agent();
    let out = fx
        .run_cmd(&["db"], &["sh", "-c", "touch ran"])
        .current_dir(fx.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("denied"), "{stderr}");
    assert!(!fx.path("ran").exists(), "the command must not run");
    assert!(
        fx.pg.as_ref().unwrap().dynamic_roles().is_empty(),
        "nothing issued"
    );
    let deny = fx
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "deny")
        .expect("deny audited");
    assert_eq!(deny["caller"]["uid"], my_uid());
    assert_eq!(deny["profile"], "db");
    assert!(
        fx.metrics()
            .contains("keyward_agent_denied_total{profile=\"db\"} 1")
    );
}

#[test]
fn jwt_login_and_build_claims() {
    let issuer = JwtIssuer::new();
    let mut fx = Fixture::new(false);
    fx.enable_jwt(&issuer);
    fx.bao.must(
        "POST",
        "secret/data/app",
        Some(&json!({"data": {"api_key": "kv-value-1"}})),
    );
    let agent_jwt = issuer.sign(&JwtIssuer::gitlab_claims("group/app", "main", true));
    let jwt_file = write_file(fx.dir.path(), "agent.jwt", &agent_jwt);
    fx.use_jwt_login(&jwt_file);
    fx.write_config(&format!(
        "[caller-jwt]\nmount = \"jwt\"\nrole = \"build\"\n\n\
         [profiles.kv]\nkind = \"kv2\"\nmount = \"secret\"\npath = \"app\"\n\
         allow = {{ uids = [{uid}], claims = {{ project_path = [\"group/app\"], ref_protected = [\"true\"] }} }}\n",
        uid = my_uid()
    ));
    fx.start_agent();
    assert!(
        fx.agent_log().contains("method=\"jwt\""),
        "agent logged in with JWT"
    );

    // A build of group/app on a protected branch gets the secret.
    let good = issuer.sign(&JwtIssuer::gitlab_claims("group/app", "main", true));
    let out = fx
        .run_cmd(&["kv"], &["sh", "-c", "printf %s \"$KEYWARD_KV_API_KEY\""])
        .env("KEYWARD_BUILD_JWT", &good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The value reached the command; its output is masked (see `run_masks_issued_values`).
    assert_eq!(String::from_utf8_lossy(&out.stdout), "***");

    // Another project (Vault's bound claims reject it) and no JWT at all are denied.
    let bad = issuer.sign(&JwtIssuer::gitlab_claims("group/other", "main", true));
    for jwt in [Some(bad), None] {
        let mut cmd = fx.run_cmd(&["kv"], &["true"]);
        if let Some(j) = &jwt {
            cmd.env("KEYWARD_BUILD_JWT", j);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let denies: Vec<_> = fx
        .audit_events()
        .into_iter()
        .filter(|e| e["event"] == "deny")
        .collect();
    assert_eq!(denies.len(), 2);
    let issue = fx
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "issue")
        .unwrap();
    assert_eq!(issue["claims"]["project_path"], "group/app");
}

#[test]
fn pki_certificate_serial_is_revoked_at_session_end() {
    let mut fx = Fixture::new(false);
    fx.enable_pki();
    fx.write_config(&format!(
        "[profiles.cert]\nkind = \"pki\"\nrole = \"build\"\ncommon-name = \"build.keyward.test\"\n\
         default-ttl = \"10m\"\nallow = {{ uids = [{}] }}\n",
        my_uid()
    ));
    fx.start_agent();
    let dir = fx.dir.path().display().to_string();
    let script = format!(
        "printf %s \"$KEYWARD_CERT_SERIAL_NUMBER\" > {dir}/serial; grep -q 'BEGIN CERTIFICATE' \"$KEYWARD_CREDENTIALS_DIR/KEYWARD_CERT_CERTIFICATE\" && touch {dir}/cert-ok || true"
    );
    // Files mode: every field is a 0600 file in a private directory.
    let files = fx.path("creds");
    let mut cmd = std::process::Command::new(crate::fixture::agent_bin());
    cmd.args(["run", "--profile", "cert", "--files"])
        .arg(&files)
        .args(["--", "sh", "-c", &format!("KEYWARD_CERT_SERIAL_NUMBER=$(cat \"$KEYWARD_CREDENTIALS_DIR/KEYWARD_CERT_SERIAL_NUMBER\"); {script}")])
        .env("KEYWARD_AGENT_SOCKET", fx.socket())
        .stdin(Stdio::null());
    let status = cmd.status().unwrap();
    assert!(status.success());
    assert!(
        fx.path("cert-ok").exists(),
        "certificate delivered as a file"
    );
    assert!(
        !files.exists(),
        "the private directory is removed afterwards"
    );
    let serial = fx.read("serial");
    assert!(!serial.is_empty());
    let cert = fx.bao.must("GET", &format!("pki/cert/{serial}"), None);
    assert!(
        cert["data"]["revocation_time"].as_i64().unwrap() > 0,
        "{cert}"
    );
}

#[test]
fn child_token_and_kv2_are_scoped_to_the_session() {
    let mut fx = Fixture::new(false);
    fx.bao.must(
        "POST",
        "secret/data/build",
        Some(&json!({"data": {"password": "kv-pass", "user": "ci"}})),
    );
    fx.write_config(&format!(
        "[profiles.tok]\nkind = \"token\"\npolicies = [\"default\"]\nnum-uses = 5\n\
         env = {{ token = \"VAULT_TOKEN\" }}\nallow = {{ uids = [{uid}] }}\n\n\
         [profiles.kv]\nkind = \"kv2\"\nmount = \"secret\"\npath = \"build\"\n\
         env = {{ password = \"BUILD_PASSWORD\" }}\nallow = {{ uids = [{uid}] }}\n",
        uid = my_uid()
    ));
    fx.start_agent();
    let dir = fx.dir.path().display().to_string();
    let status = fx
        .run_cmd(&["tok", "kv"], &["sh", "-c", &format!("printf %s \"$VAULT_TOKEN\" > {dir}/token; printf %s \"$BUILD_PASSWORD\" > {dir}/pw")])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fx.read("pw"), "kv-pass");
    let token = fx.read("token");
    assert!(!token.is_empty());
    let err = fx
        .bao
        .api_as(&token, "GET", "auth/token/lookup-self", None)
        .unwrap_err();
    assert_eq!(err.status, 403, "child token must be revoked: {err:?}");
}

#[test]
fn run_masks_issued_values_in_the_command_output() {
    const VALUE: &str = "kv-s3cret/va+lue=\"q\"&x";
    let mut fx = Fixture::new(false);
    fx.bao.must(
        "POST",
        "secret/data/mask",
        Some(&json!({"data": {"token": VALUE}})),
    );
    fx.write_config(&format!(
        "[profiles.kv]\nkind = \"kv2\"\nmount = \"secret\"\npath = \"mask\"\n\
         env = {{ token = \"TOKEN\" }}\nallow = {{ uids = [{uid}] }}\n",
        uid = my_uid()
    ));
    fx.start_agent();
    // Each form on its own line (plain, base64 and the split from the env var; the percent- and
    // JSON-encoded forms as literals). The split line writes the value in two pieces with a
    // pause longer than the idle flush in between; stderr gets one too.
    let url = "kv-s3cret%2Fva%2Blue%3D%22q%22%26x";
    let json_escaped = r#"kv-s3cret/va+lue=\"q\"&x"#;
    let script = format!(
        r#"
        printf 'plain=%s\n' "$TOKEN"
        printf 'b64=%s\n' "$(printf %s "$TOKEN" | base64 | tr -d '\n')"
        printf 'url=%s\n' '{url}'
        printf 'json={{"t":"%s"}}\n' '{json_escaped}'
        printf 'split=%s' "$(printf %s "$TOKEN" | cut -c1-9)"
        sleep 0.3
        printf '%s;\n' "$(printf %s "$TOKEN" | cut -c10-)"
        printf 'err=%s\n' "$TOKEN" >&2
        exit 3
    "#
    );
    let out = fx
        .run_cmd(&["kv"], &["sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit status passes through\n{stderr}"
    );
    assert!(
        !stdout.contains("s3cret") && !stderr.contains("s3cret"),
        "{stdout}\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "plain=***", "{stdout}");
    assert_eq!(lines[1], "b64=***", "{stdout}");
    assert_eq!(lines[2], "url=***", "{stdout}");
    assert_eq!(lines[3], r#"json={"t":"***"}"#, "{stdout}");
    // Split: at most MIN_MASK_LEN - 1 bytes may precede the mask; here 9 were written before
    // the pause and must not appear.
    assert_eq!(lines[4], "split=***;", "{stdout}");
    assert!(stderr.contains("err=***\n"), "{stderr}");
}
