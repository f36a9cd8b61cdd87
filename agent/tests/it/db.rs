use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixture::{Fixture, assert_all_gone, my_uid, process_alive};

fn db_fixture() -> Fixture {
    let mut fx = Fixture::new(true);
    fx.write_config(&Fixture::db_profile(&[my_uid()]));
    fx.start_agent();
    fx
}

#[test]
fn run_connects_and_everything_is_revoked_after_exit() {
    let fx = db_fixture();
    let script = fx.db_script("exit 7");
    let started = Instant::now();
    let status = fx
        .run_cmd(&["db"], &["sh", "-c", &script])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    let exited = Instant::now();
    assert_eq!(
        status.code(),
        Some(7),
        "run must exit with the command status\nbg: {}",
        fx.read("bg.log")
    );
    let user = fx.read("user");
    assert!(user.starts_with("v-"), "connected as {user:?}");
    // Revocation is synchronous with `run`'s exit: already gone when it returns.
    assert_all_gone(&fx, &user, Duration::from_secs(1));
    println!(
        "run took {:?}, revocation checked {:?} after exit",
        exited - started,
        exited.elapsed()
    );
}

#[test]
fn kill_9_of_the_command_revokes() {
    let fx = db_fixture();
    let mut run = fx.spawn_holding_db_build();
    let user = fx.read("user");
    assert!(fx.pg.as_ref().unwrap().role_exists(&user));
    let pid: u32 = fx.read("cmd.pid").parse().unwrap();
    keyward_tests::signal(pid, "KILL");
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 9));
    assert_all_gone(&fx, &user, Duration::from_secs(1));
}

#[test]
fn kill_9_of_run_kills_the_command_and_revokes() {
    let fx = db_fixture();
    let mut run = fx.spawn_holding_db_build();
    let user = fx.read("user");
    let cmd_pid: u32 = fx.read("cmd.pid").parse().unwrap();
    keyward_tests::signal(run.id(), "KILL");
    run.wait().unwrap();
    assert_all_gone(&fx, &user, Duration::from_secs(2));
    let dead = keyward_tests::wait_for(Duration::from_secs(5), || {
        (!process_alive(cmd_pid)).then_some(())
    });
    assert!(dead.is_some(), "the command outlived `run`");
}

#[test]
fn session_ttl_running_out_revokes_while_the_command_still_runs() {
    let fx = db_fixture();
    let script = fx.db_script("sleep 8; exit 3");
    let mut cmd = std::process::Command::new(crate::fixture::agent_bin());
    cmd.args([
        "run",
        "--profile",
        "db",
        "--ttl",
        "3s",
        "--",
        "sh",
        "-c",
        &script,
    ])
    .env("KEYWARD_AGENT_SOCKET", fx.socket())
    .stdin(Stdio::null());
    let mut run = cmd.spawn().unwrap();
    assert!(
        fx.wait_file("ready", Duration::from_secs(30)),
        "{}",
        fx.agent_log()
    );
    let user = fx.read("user");
    // The TTL ends the session before the command does.
    assert_all_gone(&fx, &user, Duration::from_secs(5));
    assert!(
        run.try_wait().unwrap().is_none(),
        "the command is still running"
    );
    assert_eq!(run.wait().unwrap().code(), Some(3));
    assert!(
        fx.audit_events()
            .iter()
            .any(|e| e["event"] == "end" && e["reason"] == "ttl")
    );
}

#[test]
fn leases_are_renewed_while_the_session_lives() {
    let mut fx = Fixture::new(true);
    // A role whose credentials live 3 s unless renewed.
    fx.bao.must(
        "POST",
        "database/roles/short",
        Some(&serde_json::json!({
            "db_name": "pg",
            "creation_statements": [crate::fixture::CREATION_SQL],
            "revocation_statements": crate::fixture::REVOCATION_SQL,
            "default_ttl": "3s",
            "max_ttl": "1h",
        })),
    );
    fx.write_config(&format!(
        "[profiles.short]\nkind = \"database\"\nrole = \"short\"\ndefault-ttl = \"30s\"\n\
         env = {{ username = \"PGUSER\", password = \"PGPASSWORD\" }}\nallow = {{ uids = [{uid}] }}\n\n\
         [profiles.gen]\nkind = \"generic\"\npath = \"database/creds/build\"\nallow = {{ uids = [{uid}] }}\n",
        uid = my_uid()
    ));
    fx.start_agent();
    let pg = fx.pg.as_ref().unwrap();
    let dir = fx.dir.path().display().to_string();
    let psql = pg.psql_bin();
    // Connect after the original 3 s TTL has passed: only a renewed lease still works.
    let script = format!(
        "echo $PGUSER > {dir}/user; echo $KEYWARD_GEN_USERNAME > {dir}/gen; sleep 5; \
         {} -X -h 127.0.0.1 -p {} -d postgres -tAc 'select 1' > {dir}/late",
        psql.display(),
        pg.port()
    );
    let status = fx
        .run_cmd(&["short", "gen"], &["sh", "-c", &script])
        .status()
        .unwrap();
    assert!(status.success(), "{}", fx.agent_log());
    assert_eq!(fx.read("late"), "1", "renewed credentials still log in");
    assert!(fx.audit_events().iter().any(|e| e["event"] == "renew"));
    for user in [fx.read("user"), fx.read("gen")] {
        assert!(user.starts_with("v-"), "{user:?}");
        assert!(!pg.role_exists(&user), "{user} revoked at session end");
    }
}
