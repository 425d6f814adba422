//! Scheduled jobs: visible, runnable on demand, and doing their work.

use chrono::{Duration, Utc};
use entity::instances::{ActiveModel, Status};
use entity::messages;
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, PaginatorTrait};
use uuid::Uuid;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::new_instance;

async fn run_job(app: &TestApp, name: &str) -> serde_json::Value {
    let r = send(app.req(Method::POST, &format!("/v1/admin/jobs/{name}/run"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn jobs_are_listed_with_their_schedule() {
    let app = TestApp::spawn().await;
    let jobs = send(app.req(Method::GET, "/v1/admin/jobs")).await;
    assert_eq!(jobs.status, 200);
    let names: Vec<&str> = jobs
        .body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names, ["reconnect", "retention", "webhook_sweep"]);
    for job in jobs.body.as_array().expect("list") {
        assert!(job["next_run_at"].is_string(), "{job}");
        assert_eq!(job["runs"], 0);
    }
    let swept = run_job(&app, "webhook_sweep").await;
    assert_eq!(swept["runs"], 1);
    let ran = run_job(&app, "retention").await;
    assert_eq!(ran["runs"], 1);
    assert!(ran["last_run_at"].is_string());
    assert!(ran["last_error"].is_null());
    send(app.req(Method::POST, "/v1/admin/jobs/nope/run"))
        .await
        .assert_problem(404, "job_not_found");
}

#[tokio::test]
async fn the_reconnect_sweep_restarts_idle_paired_instances_with_backoff() {
    let db = TestDb::new().await;
    let id = {
        let conn = db.connect().await;
        let i = wagate::instances::store::create(&conn, None)
            .await
            .expect("create");
        ActiveModel {
            id: Set(i.id),
            status: Set(Status::Disconnected),
            phone_number: Set(Some("6281234567894".into())),
            ..Default::default()
        }
        .update(&conn)
        .await
        .expect("update");
        conn.close().await.ok();
        i.id
    };
    let engine = ScriptedEngine::new();
    engine.store_session(id);
    // The start-up resume fails, so no client runs for the instance.
    engine.refuse_start(true);
    let settings = settings_with(&db, |f| f.merge(("scheduler.reconnect_after_secs", 0)));
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let starts = |app: &TestApp| {
        app.engine
            .calls()
            .iter()
            .filter(|c| **c == Call::Start(id))
            .count()
    };
    eventually("the start-up attempt", || async {
        (starts(&app) == 1).then_some(())
    })
    .await;

    // Still refused: the error is recorded and the next sweep waits.
    run_job(&app, "reconnect").await;
    assert_eq!(starts(&app), 2);
    let instance = send(app.req(Method::GET, &format!("/v1/instances/{id}")))
        .await
        .body;
    assert!(
        instance["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("reconnect failed"))
    );
    run_job(&app, "reconnect").await;
    assert_eq!(starts(&app), 2, "backing off, not retrying in a loop");

    // A new process has no backoff: once WhatsApp answers, it comes back.
    let db = app.into_db();
    let engine = ScriptedEngine::new();
    engine.store_session(id);
    engine.refuse_start(true);
    let settings = settings_with(&db, |f| f.merge(("scheduler.reconnect_after_secs", 0)));
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    eventually("the start-up attempt", || async {
        (starts(&app) == 1).then_some(())
    })
    .await;
    app.engine.refuse_start(false);
    run_job(&app, "reconnect").await;
    eventually("online again", || async {
        let i = send(app.req(Method::GET, &format!("/v1/instances/{id}")))
            .await
            .body;
        (i["status"] == "online").then_some(())
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_only_old_rows() {
    let app = TestApp::spawn_with(|f| f.merge(("messages.retention_days", 30))).await;
    let id = new_instance(&app).await;
    let conn = app.db.connect().await;
    let row = |age_days: i64| messages::ActiveModel {
        id: Set(Uuid::now_v7()),
        instance_id: Set(id),
        wa_message_id: Set(format!("3EB0AGE{age_days}")),
        to_number: Set("6281299990000".into()),
        to_jid: Set("6281299990000@s.whatsapp.net".into()),
        kind: Set("text".into()),
        status: Set("read".into()),
        error: Set(None),
        created_at: Set(Utc::now() - Duration::days(age_days)),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    for age in [45, 31, 29, 0] {
        messages::Entity::insert(row(age))
            .exec(&conn)
            .await
            .expect("insert");
    }
    run_job(&app, "retention").await;
    let left = messages::Entity::find().count(&conn).await.expect("count");
    assert_eq!(left, 2, "rows older than 30 days are gone, the rest stay");
    conn.close().await.ok();
}

#[tokio::test]
async fn a_restart_reconnects_everyone_within_the_concurrency_bound() {
    const N: usize = 12;
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let mut ids = Vec::new();
    for i in 0..N {
        let inst = wagate::instances::store::create(&conn, None)
            .await
            .expect("create");
        ActiveModel {
            id: Set(inst.id),
            // As a crash leaves them: still marked online.
            status: Set(Status::Online),
            is_connected: Set(true),
            phone_number: Set(Some(format!("62812000000{i:02}"))),
            ..Default::default()
        }
        .update(&conn)
        .await
        .expect("update");
        ids.push(inst.id);
    }
    conn.close().await.ok();
    let engine = ScriptedEngine::new();
    for id in &ids {
        engine.store_session(*id);
    }
    engine.connect_delay(std::time::Duration::from_millis(150));
    let settings = settings_with(&db, |f| f.merge(("whatsapp.resume_concurrency", 3)));
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    for id in &ids {
        eventually("every instance back online", || async {
            let i = send(app.req(Method::GET, &format!("/v1/instances/{id}")))
                .await
                .body;
            (i["status"] == "online").then_some(())
        })
        .await;
    }
    let max = app.engine.max_connecting();
    assert!(
        (1..=3).contains(&max),
        "at most 3 handshakes at once, saw {max}"
    );
    for id in &ids {
        let events = crate::pairing::events(&app, *id).await;
        let connected: Vec<_> = events
            .iter()
            .filter(|(t, _)| t == "instance.connected")
            .collect();
        assert_eq!(connected.len(), 1);
        assert_eq!(connected[0].1["previous_status"], "disconnected");
    }
}
