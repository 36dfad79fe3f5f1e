//! The broker against a real SQLite store: rules, release, timeouts,
//! several approvers, grants, withdrawal and the restart sweep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::audit::AuditStore;
use crate::config::ApprovalsConfig;
use crate::identity::PrincipalKind;
use crate::metrics::Metrics;

struct Fixture {
    approvals: Arc<Approvals>,
    url: String,
    _stop: watch::Sender<bool>,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(min_approvals: u32) -> Fixture {
    let dir = std::env::temp_dir().join(format!("gatehouse-approvals-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("store.db").display());
    start(url, dir, min_approvals).await
}

async fn start(url: String, dir: std::path::PathBuf, min_approvals: u32) -> Fixture {
    start_with(url, dir, min_approvals, 500).await
}

async fn start_with(
    url: String,
    dir: std::path::PathBuf,
    min_approvals: u32,
    poll_interval_ms: u64,
) -> Fixture {
    let store = AuditStore::connect(&url).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let (audit, _writer) = AuditSink::start(
        store.clone(),
        crate::config::StoreFailureMode::Continue,
        1000,
        metrics.clone(),
    );
    let (stop, shutdown) = watch::channel(false);
    let config = ApprovalsConfig {
        min_approvals,
        poll_interval_ms,
        ..ApprovalsConfig::default()
    };
    let approvals = Approvals::start(
        ApprovalStore::new(store.pool().clone(), &url),
        audit,
        &config,
        metrics,
        shutdown,
    )
    .await
    .unwrap();
    Fixture {
        approvals,
        url,
        _stop: stop,
        dir,
    }
}

fn person(subject: &str, groups: &[&str], acting_for: Option<&str>) -> Principal {
    Principal {
        subject: subject.into(),
        issuer: "gatehouse".into(),
        kind: PrincipalKind::Human,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        acting_for: acting_for.map(str::to_string),
        person: None,
        allowed_connections: vec![],
    }
}

fn session() -> SessionMeta {
    SessionMeta {
        id: "s1".into(),
        connection: "db".into(),
        client_addr: "127.0.0.1:5000".into(),
        started_at_ms: 0,
    }
}

fn info(requester: &Principal, timeout_secs: u32, scope: ApprovalScope) -> ApprovalInfo {
    ApprovalInfo {
        id: uuid::Uuid::now_v7().to_string(),
        connection: "db".into(),
        protocol: "postgres".into(),
        session_id: "s1".into(),
        request_id: "r".into(),
        requester: requester.record(),
        request: serde_json::json!({"sql": "DROP TABLE t"}),
        policy: "sql-guard".into(),
        reason: "drop".into(),
        approver_groups: vec!["dba".into()],
        timeout_secs,
        scope,
        created_at_ms: crate::audit::record::now_ms(),
    }
}

async fn held(f: &Fixture, who: &Principal, timeout: u32, scope: ApprovalScope) -> Ticket {
    submitted(f, who, info(who, timeout, scope)).await
}

/// Held with a deadline that passed a minute ago, as if its holder went
/// away without recording the timeout.
/// Held with its deadline `ago_ms` in the past.
async fn held_late(f: &Fixture, who: &Principal, ago_ms: i64) -> Ticket {
    let mut late = info(who, 1, ApprovalScope::Once);
    late.created_at_ms -= 1_000 + ago_ms;
    submitted(f, who, late).await
}

async fn submitted(f: &Fixture, who: &Principal, info: ApprovalInfo) -> Ticket {
    match f.approvals.submit(info, who, &session()).await {
        Submitted::Waiting(t) => t,
        Submitted::Settled(s) => panic!("not held: {s:?}"),
    }
}

#[tokio::test]
async fn rules_hold_and_a_decision_releases_the_waiter() {
    let f = fixture(1).await;
    let bot = person("bot", &["dba"], Some("alice"));
    let ticket = held(&f, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    let a = &f.approvals;
    assert_eq!(
        a.decide(&id, &bot, true, None).await.unwrap_err(),
        ApprovalError::OwnRequest("bot".into())
    );
    let alice = person("alice", &["dba"], None);
    assert!(matches!(
        a.decide(&id, &alice, true, None).await,
        Err(ApprovalError::OwnRequest(_))
    ));
    let dev = person("dave", &["dev"], None);
    assert!(matches!(
        a.decide(&id, &dev, true, None).await,
        Err(ApprovalError::NotApprover(..))
    ));
    let dba = person("dora", &["dba"], None);
    assert_eq!(
        a.decide(&id, &dba, false, Some("  ".into()))
            .await
            .unwrap_err(),
        ApprovalError::ReasonRequired
    );
    let waiting = tokio::spawn(ticket.wait());
    let r = a.decide(&id, &dba, true, None).await.unwrap();
    assert_eq!(r.status, ApprovalStatus::Approved);
    let settled = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("released within a second")
        .unwrap();
    assert_eq!(settled.status, ApprovalStatus::Approved);
    assert_eq!(
        settled.outcome,
        ApprovalOutcome::Approved {
            by: "dora".into(),
            approvers: vec!["dora".into()],
            grant: None
        }
    );
    assert_eq!(
        a.decide(
            &id,
            &person("dan", &["dba"], None),
            false,
            Some("late".into())
        )
        .await
        .unwrap_err(),
        ApprovalError::AlreadyDecided {
            id: id.clone(),
            status: ApprovalStatus::Approved
        }
    );
    assert_eq!(
        a.decide("nope", &dba, true, None).await.unwrap_err(),
        ApprovalError::NotFound("nope".into())
    );
    let stored = a.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.decisions.len(), 1);
    assert_eq!(stored.decisions[0].approver.subject, "dora");
    assert_eq!(stored.info.requester.acting_for.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_denial_is_final_and_carries_its_reason() {
    let f = fixture(2).await;
    let bot = person("bot", &[], None);
    let ticket = held(&f, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    let waiting = tokio::spawn(ticket.wait());
    let r = f
        .approvals
        .decide(
            &id,
            &person("dora", &["dba"], None),
            false,
            Some("not now".into()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, ApprovalStatus::Denied);
    let s = waiting.await.unwrap();
    assert_eq!(
        s.outcome,
        ApprovalOutcome::Denied {
            by: "dora".into(),
            reason: "not now".into()
        }
    );
}

#[tokio::test]
async fn silence_times_out_as_a_denial() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let ticket = held(&f, &bot, 1, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    let s = ticket.wait().await;
    assert_eq!(s.status, ApprovalStatus::TimedOut);
    assert_eq!(s.outcome, ApprovalOutcome::TimedOut);
    let r = f.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(r.status, ApprovalStatus::TimedOut);
    assert!(
        f.approvals
            .list(Some(ApprovalStatus::Waiting), 10, |_| true)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn min_approvals_needs_distinct_people() {
    let f = fixture(2).await;
    let bot = person("bot", &[], None);
    let ticket = held(&f, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    let waiting = tokio::spawn(ticket.wait());
    let a = &f.approvals;
    let r = a
        .decide(&id, &person("dora", &["dba"], None), true, None)
        .await
        .unwrap();
    assert_eq!(r.status, ApprovalStatus::Waiting);
    // Dora again, directly or through an agent, is still one approver.
    assert_eq!(
        a.decide(&id, &person("dora", &["dba"], None), true, None)
            .await
            .unwrap_err(),
        ApprovalError::AlreadyVoted("dora".into())
    );
    assert_eq!(
        a.decide(&id, &person("dora-bot", &["dba"], Some("dora")), true, None)
            .await
            .unwrap_err(),
        ApprovalError::AlreadyVoted("dora".into())
    );
    assert!(!waiting.is_finished());
    let r = a
        .decide(&id, &person("dan", &["dba"], None), true, None)
        .await
        .unwrap();
    assert_eq!(r.status, ApprovalStatus::Approved);
    let s = waiting.await.unwrap();
    assert_eq!(
        s.outcome,
        ApprovalOutcome::Approved {
            by: "dan".into(),
            approvers: vec!["dora".into(), "dan".into()],
            grant: None
        }
    );
}

#[tokio::test]
async fn a_grant_lets_the_same_caller_through_until_it_expires() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let scope = ApprovalScope::Grant {
        key: "rules[0] payments".into(),
        duration_secs: 2,
    };
    let ticket = held(&f, &bot, 30, scope.clone()).await;
    let id = ticket.id.clone();
    let waiting = tokio::spawn(ticket.wait());
    f.approvals
        .decide(&id, &person("dora", &["dba"], None), true, None)
        .await
        .unwrap();
    waiting.await.unwrap();
    // The same caller and key: no new approval.
    match f
        .approvals
        .submit(info(&bot, 30, scope.clone()), &bot, &session())
        .await
    {
        Submitted::Settled(s) => {
            assert_eq!(s.id, id);
            assert!(matches!(
                s.outcome,
                ApprovalOutcome::Approved { grant: Some(ref g), .. } if g.key == "rules[0] payments"
            ));
        }
        Submitted::Waiting(_) => panic!("the grant was not used"),
    }
    // Another caller, or another key, still asks.
    let other = person("other-bot", &[], None);
    assert!(matches!(
        f.approvals
            .submit(info(&other, 30, scope.clone()), &other, &session())
            .await,
        Submitted::Waiting(_)
    ));
    let other_key = ApprovalScope::Grant {
        key: "rules[1] *".into(),
        duration_secs: 2,
    };
    assert!(matches!(
        f.approvals
            .submit(info(&bot, 30, other_key), &bot, &session())
            .await,
        Submitted::Waiting(_)
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        f.approvals
            .submit(info(&bot, 30, scope), &bot, &session())
            .await,
        Submitted::Waiting(_)
    ));
}

#[tokio::test]
async fn a_dropped_ticket_withdraws_the_request() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let ticket = held(&f, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    drop(ticket);
    for _ in 0..50 {
        if f.approvals.store().status(&id).await.unwrap() == Some(ApprovalStatus::Abandoned) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the withdrawn approval was not marked abandoned");
}

#[tokio::test]
async fn a_restart_abandons_what_the_last_run_left_waiting() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let ticket = held(&f, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    // The process "dies": the ticket is never settled or dropped.
    std::mem::forget(ticket);
    let again = start(f.url.clone(), f.dir.clone(), 1).await;
    let r = again.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(r.status, ApprovalStatus::Abandoned);
    assert!(r.status_reason.unwrap().contains("stopped"));
}

#[tokio::test]
async fn a_decision_made_elsewhere_is_found_by_polling() {
    // Two brokers on one store, as two processes would be; no notification
    // crosses between them, only the store.
    let other = fixture(1).await;
    let holder = start_with(other.url.clone(), other.dir.clone(), 1, 100).await;
    let bot = person("bot", &[], None);
    let ticket = held(&holder, &bot, 30, ApprovalScope::Once).await;
    let id = ticket.id.clone();
    let waiting = tokio::spawn(ticket.wait());
    other
        .approvals
        .decide(&id, &person("dora", &["dba"], None), true, None)
        .await
        .unwrap();
    let s = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the poller did not release the waiter")
        .unwrap();
    assert_eq!(s.status, ApprovalStatus::Approved);
}

#[tokio::test]
async fn a_wait_nobody_ends_is_timed_out_by_the_sweep() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let ticket = held_late(&f, &bot, 60_000).await;
    let id = ticket.id.clone();
    // Forget the ticket without letting it settle (as a crashed task would).
    std::mem::forget(ticket);
    f.approvals.sweep_expired().await.unwrap();
    let r = f.approvals.get(&id).await.unwrap().unwrap();
    assert_eq!(r.status, ApprovalStatus::TimedOut);
    assert!(r.status_reason.unwrap().contains("sweep"));
    // Deciding it now is refused as decided, not recorded.
    assert!(matches!(
        f.approvals
            .decide(&id, &person("dora", &["dba"], None), true, None)
            .await,
        Err(ApprovalError::AlreadyDecided { .. })
    ));
}

#[tokio::test]
async fn a_decision_after_the_deadline_is_refused_in_its_transaction() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    // Past its deadline but within the sweep's grace, so that no
    // background sweep times it out before the decision is tried.
    let ticket = held_late(&f, &bot, 1_000).await;
    let id = ticket.id.clone();
    assert_eq!(
        f.approvals
            .decide(&id, &person("dora", &["dba"], None), true, None)
            .await
            .unwrap_err(),
        ApprovalError::Expired(id.clone())
    );
    assert!(
        f.approvals
            .get(&id)
            .await
            .unwrap()
            .unwrap()
            .decisions
            .is_empty()
    );
    drop(ticket);
}

#[tokio::test]
async fn a_submit_dropped_midway_leaves_no_waiter_behind() {
    let f = fixture(1).await;
    // What submit registers before its insert: if the submit is dropped
    // while the insert runs, the registration goes with it.
    {
        let _r = Registration::new(&f.approvals, "x", Arc::new(tokio::sync::Notify::new()));
        assert_eq!(f.approvals.waiting_ids(), ["x"]);
    }
    assert!(f.approvals.waiting_ids().is_empty());
    // Kept, it stays for the ticket.
    Registration::new(&f.approvals, "y", Arc::new(tokio::sync::Notify::new())).keep();
    assert_eq!(f.approvals.waiting_ids(), ["y"]);
}

#[tokio::test]
async fn grants_are_capped_at_the_configured_maximum() {
    let f = fixture(1).await;
    let bot = person("bot", &[], None);
    let ticket = held(
        &f,
        &bot,
        30,
        ApprovalScope::Grant {
            key: "k".into(),
            duration_secs: u32::MAX,
        },
    )
    .await;
    let r = f.approvals.get(&ticket.id).await.unwrap().unwrap();
    assert_eq!(
        r.info.scope,
        ApprovalScope::Grant {
            key: "k".into(),
            duration_secs: ApprovalsConfig::default().max_grant_secs
        }
    );
}
