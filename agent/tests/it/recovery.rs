use std::time::{Duration, Instant};

use crate::fixture::{Fixture, assert_all_gone, my_uid};

#[test]
fn kill_9_of_the_agent_then_restart_revokes_orphans_within_5s() {
    let mut fx = Fixture::new(true);
    fx.write_config(&Fixture::db_profile(&[my_uid()]));
    fx.start_agent();
    let mut run = fx.spawn_holding_db_build();
    let user = fx.read("user");
    // The ledger holds the lease id and the session token accessor, no values.
    assert_eq!(fx.ledger_live(), 1);

    fx.kill_agent();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        fx.pg.as_ref().unwrap().role_exists(&user),
        "nothing may revoke while the agent is down"
    );
    assert_eq!(fx.db_leases().len(), 1);

    let restarted = Instant::now();
    fx.start_agent();
    assert_all_gone(
        &fx,
        &user,
        Duration::from_secs(5).saturating_sub(restarted.elapsed()),
    );
    println!("orphans revoked {:?} after restart", restarted.elapsed());
    let ledger_empty = keyward_tests::wait_for(Duration::from_secs(2), || {
        (fx.ledger_live() == 0).then_some(())
    });
    assert!(ledger_empty.is_some());
    assert!(fx.audit_events().iter().any(|e| e["event"] == "orphan"));
    let _ = run.kill();
    let _ = run.wait();
}

#[test]
fn revocation_is_retried_while_openbao_is_down() {
    let mut fx = Fixture::new(true);
    fx.write_config(&Fixture::db_profile(&[my_uid()]));
    fx.start_agent();
    let mut run = fx.spawn_holding_db_build();
    let user = fx.read("user");
    let cmd_pid: u32 = fx.read("cmd.pid").parse().unwrap();

    // "Down": the server process is stopped, so requests time out (the agent's is 2 s here).
    keyward_tests::signal(fx.bao.pid(), "STOP");
    keyward_tests::signal(cmd_pid, "KILL");
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(
        fx.pg.as_ref().unwrap().role_exists(&user),
        "revocation cannot have happened yet"
    );
    assert!(
        fx.audit_events()
            .iter()
            .any(|e| e["event"] == "revoke-failed"),
        "the failure is audited\n{}",
        fx.agent_log()
    );
    assert_eq!(fx.ledger_live(), 1, "still in the ledger");
    std::thread::sleep(Duration::from_secs(2));
    keyward_tests::signal(fx.bao.pid(), "CONT");
    let back = Instant::now();
    // Back-off is capped at 30 s; after a few seconds of outage the next try is within ~4 s.
    assert_all_gone(&fx, &user, Duration::from_secs(15));
    println!("revoked {:?} after OpenBao came back", back.elapsed());
    let events = fx.audit_events();
    let last_revoke = events.iter().rposition(|e| e["event"] == "revoke").unwrap();
    let first_fail = events
        .iter()
        .position(|e| e["event"] == "revoke-failed")
        .unwrap();
    assert!(last_revoke > first_fail);
    let ledger_empty = keyward_tests::wait_for(Duration::from_secs(5), || {
        (fx.ledger_live() == 0).then_some(())
    });
    assert!(ledger_empty.is_some());
}
