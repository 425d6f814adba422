//! Webhook delivery across processes: a gateway killed with SIGKILL while
//! deliveries are in flight loses none, and two gateways on one database
//! never attempt the same delivery at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
use serde_json::json;
use uuid::Uuid;
use wagate::app::App;
use wagate::webhooks::{EventType, record};

use crate::harness::{ADMIN_KEY, TestApp, TestDb, send, settings};
use crate::process::{start, wagate};
use crate::receiver::{Answer, Receiver};

async fn record_events(db_url: &str, instance: Uuid, n: usize) -> Vec<String> {
    let db = sea_orm::Database::connect(db_url).await.expect("connect");
    let mut ids = Vec::new();
    for i in 0..n {
        let txn = db.begin().await.expect("begin");
        ids.push(
            record(
                &txn,
                instance,
                EventType::MessageReceived,
                json!({ "seq": i }),
            )
            .await
            .expect("record"),
        );
        txn.commit().await.expect("commit");
    }
    db.close().await.ok();
    ids
}

async fn succeeded(db_url: &str) -> u64 {
    use entity::webhook_deliveries::{Column, Entity, Status};
    let db = sea_orm::Database::connect(db_url).await.expect("connect");
    let n = Entity::find()
        .filter(Column::Status.eq(Status::Succeeded))
        .count(&db)
        .await
        .expect("count");
    db.close().await.ok();
    n
}

#[tokio::test]
async fn sigkill_loses_no_delivery() {
    let db = TestDb::new().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Answer::Hang);
    let gateway = |db_url: &str| {
        let mut cmd = wagate(db_url);
        cmd.env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
            .env("WAGATE_LOG", "warn,wagate::app=info")
            .env("WAGATE_WEBHOOKS__REQUEST_TIMEOUT_SECS", "1")
            .env("WAGATE_WEBHOOKS__LEASE_SECS", "1.5")
            .env("WAGATE_WEBHOOKS__SWEEP_INTERVAL_SECS", "0.05")
            // The scheduler's sweep gives expired claims back.
            .env("WAGATE_SCHEDULER__WEBHOOK_SWEEP_CRON", "* * * * * *");
        cmd
    };
    let http = crate::harness::http_client();

    let first = start(gateway(&db.url));
    let inst = send(
        http.request(Method::POST, first.url("/v1/instances"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({})),
    )
    .await;
    let inst: Uuid = inst.body["id"].as_str().expect("id").parse().expect("uuid");
    let hook = send(
        http.request(
            Method::POST,
            first.url(&format!("/v1/instances/{inst}/webhooks")),
        )
        .bearer_auth(ADMIN_KEY)
        .json(&json!({ "url": receiver.url("/") })),
    )
    .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);

    let ids = record_events(&db.url, inst, 20).await;
    // Some attempts are in flight (the receiver holds them) when the
    // process dies.
    receiver.wait_for(3, Duration::from_secs(20)).await;
    drop(first); // SIGKILL
    {
        use entity::webhook_deliveries::{Column, Entity, Status};
        let conn = sea_orm::Database::connect(&db.url).await.expect("connect");
        let claimed = Entity::find()
            .filter(Column::Status.eq(Status::Delivering))
            .count(&conn)
            .await
            .expect("count");
        assert!(claimed >= 1, "some deliveries were claimed when it died");
        conn.close().await.ok();
    }

    // The dead process's claims are released by the next process's sweep
    // once their leases (1.5 s here) run out; it then delivers them.
    receiver.set_default(Answer::Status(200));
    let second = start(gateway(&db.url));
    let deadline = Instant::now() + Duration::from_secs(30);
    while succeeded(&db.url).await < 20 {
        assert!(Instant::now() < deadline, "every delivery succeeds");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: HashSet<String> = receiver
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    for id in &ids {
        assert!(seen.contains(id), "{id} was delivered");
    }
    assert!(second.terminate().success());
}

#[tokio::test]
async fn two_dispatchers_never_share_a_delivery() {
    let app = TestApp::spawn().await;
    // A second gateway on the same database, with its own dispatcher.
    let other = App::build(
        settings(&app.db),
        std::sync::Arc::new(wagate::engine::scripted::ScriptedEngine::new()),
    )
    .await
    .expect("build");
    let other_wake = other.state().webhooks.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(other.run(async {
        let _ = stopped.await;
    }));

    let receiver = Receiver::start().await;
    receiver.set_default(Answer::Slow(200, 5));
    let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    let inst: Uuid = r.body["id"].as_str().expect("id").parse().expect("uuid");
    for _ in 0..3 {
        let r = send(
            app.req(Method::POST, &format!("/v1/instances/{inst}/webhooks"))
                .json(&json!({ "url": receiver.url("/") })),
        )
        .await;
        assert_eq!(r.status, 201);
    }
    let ids = record_events(&app.db.url, inst, 100).await;
    app.webhooks.wake();
    other_wake.wake();

    let got = receiver.wait_for(300, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while succeeded(&app.db.url).await < 300 {
        assert!(Instant::now() < deadline, "all 300 deliveries succeed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every (event, webhook) pair arrived exactly once: no delivery was
    // claimed by both dispatchers.
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in receiver.requests() {
        *per_event
            .entry(r.header("webhook-id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(got.len(), 300);
    assert_eq!(receiver.requests().len(), 300, "no duplicates");
    for id in &ids {
        assert_eq!(per_event.get(id), Some(&3), "{id}");
    }
    let _ = stop.send(());
}
