//! The instance lifecycle through HTTP, with the scripted engine standing in
//! for WhatsApp.

use std::time::Duration;

use entity::instances::{ActiveModel, Status};
use entity::webhook_events;
use reqwest::Method;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::EngineEvent;
use wagate::engine::scripted::{Call, ScriptedEngine};
use wagate::instances::sessions::lane;

use crate::harness::{Reply, TestApp, TestDb, eventually, send, settings, settings_with};

pub(crate) async fn new_instance(app: &TestApp) -> Uuid {
    let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    r.body["id"].as_str().expect("id").parse().expect("uuid")
}

pub(crate) async fn instance(app: &TestApp, id: Uuid) -> Value {
    send(app.req(Method::GET, &format!("/v1/instances/{id}")))
        .await
        .body
}

async fn post(app: &TestApp, id: Uuid, action: &str) -> Reply {
    send(app.req(Method::POST, &format!("/v1/instances/{id}/{action}"))).await
}

pub(crate) async fn wait_status(app: &TestApp, id: Uuid, status: &str) -> Value {
    eventually(&format!("status {status}"), || async {
        let i = instance(app, id).await;
        (i["status"] == status).then_some(i)
    })
    .await
}

/// The outbox, oldest first: (type, data).
pub(crate) async fn events(app: &TestApp, id: Uuid) -> Vec<(String, Value)> {
    let db = app.db.connect().await;
    let rows = webhook_events::Entity::find()
        .filter(webhook_events::Column::InstanceId.eq(id))
        .order_by_asc(webhook_events::Column::Id)
        .all(&db)
        .await
        .expect("events");
    db.close().await.ok();
    rows.into_iter().map(|e| (e.event_type, e.data)).collect()
}

pub(crate) fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

/// Every event sent for `id` before this returns has been applied: an
/// instance's events are applied in order by its lane's worker, so the first
/// QR code of a fresh instance on the same lane trails them all.
pub(crate) async fn settle(app: &TestApp, id: Uuid) {
    let marker = loop {
        let marker = new_instance(app).await;
        if lane(marker) == lane(id) {
            break marker;
        }
    };
    assert_eq!(post(app, marker, "login").await.status, 200);
}

pub(crate) async fn pair_and_connect(app: &TestApp, id: Uuid, phone: &str) {
    let login = post(app, id, "login").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let jid = format!("{phone}@s.whatsapp.net");
    assert!(
        app.engine
            .emit(
                id,
                EngineEvent::Paired {
                    jid: jid.clone(),
                    lid: Some("123456789@lid".into()),
                    phone_number: Some(phone.into()),
                },
            )
            .await
    );
    assert!(
        app.engine
            .emit(
                id,
                EngineEvent::Connected {
                    jid: Some(jid),
                    phone_number: Some(phone.into()),
                },
            )
            .await
    );
    wait_status(app, id, "online").await;
}

#[tokio::test]
async fn the_whole_lifecycle() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;

    // login -> QR
    let login = post(&app, id, "login").await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(login.body["status"], "qr_pending");
    let qr = &login.body["qr"];
    assert_eq!(qr["code"], ScriptedEngine::qr_code(id, 1));
    assert_eq!(qr["attempt"], 1);
    assert!(
        qr["data_url"]
            .as_str()
            .expect("data url")
            .starts_with("data:image/png;base64,")
    );

    // The same code three ways.
    let json_qr = send(app.req(Method::GET, &format!("/v1/instances/{id}/qr"))).await;
    assert_eq!(json_qr.body["code"], qr["code"]);
    for req in [
        app.req(Method::GET, &format!("/v1/instances/{id}/qr?format=png")),
        app.req(Method::GET, &format!("/v1/instances/{id}/qr"))
            .header("accept", "image/png"),
    ] {
        let resp = req.send().await.expect("png");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/png");
        let bytes = resp.bytes().await.expect("bytes");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }

    // A new code replaces the old one.
    app.engine
        .emit(
            id,
            EngineEvent::Qr {
                code: ScriptedEngine::qr_code(id, 2),
                valid_for: Duration::from_secs(20),
                attempt: 2,
            },
        )
        .await;
    eventually("the second QR code", || async {
        let r = send(app.req(Method::GET, &format!("/v1/instances/{id}/qr"))).await;
        (r.body["attempt"] == 2).then_some(())
    })
    .await;

    // paired -> online
    pair_and_connect(&app, id, "6281234567890").await;
    let online = instance(&app, id).await;
    assert_eq!(online["phone_number"], "6281234567890");
    assert_eq!(online["jid"], "6281234567890@s.whatsapp.net");
    assert_eq!(online["is_connected"], true);
    assert!(online["last_connected_at"].is_string());
    post(&app, id, "login")
        .await
        .assert_problem(409, "instance_online");
    send(app.req(Method::GET, &format!("/v1/instances/{id}/qr")))
        .await
        .assert_problem(409, "instance_online");

    // online -> disconnected -> online
    app.engine
        .emit(
            id,
            EngineEvent::Disconnected {
                reason: "read error: reset".into(),
            },
        )
        .await;
    let down = wait_status(&app, id, "disconnected").await;
    assert_eq!(down["is_connected"], false);
    assert!(
        down["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("reset"))
    );
    app.engine
        .emit(
            id,
            EngineEvent::Connected {
                jid: None,
                phone_number: None,
            },
        )
        .await;
    wait_status(&app, id, "online").await;

    // logout: unlinked, wiped, terminal.
    let out = post(&app, id, "logout").await;
    assert_eq!(out.status, 200, "{:?}", out.body);
    assert_eq!(out.body["status"], "logged_out");
    assert!(
        out.body["phone_number"].is_null(),
        "the number is free again"
    );
    let calls = app.engine.calls();
    assert!(calls.contains(&Call::Logout(id)) && calls.contains(&Call::Wipe(id)));
    assert!(!app.engine.has_live_session(id));
    post(&app, id, "login")
        .await
        .assert_problem(410, "instance_logged_out");
    post(&app, id, "logout")
        .await
        .assert_problem(410, "instance_logged_out");
    send(app.req(Method::GET, &format!("/v1/instances/{id}/qr")))
        .await
        .assert_problem(410, "instance_logged_out");

    settle(&app, id).await;
    let evs = events(&app, id).await;
    assert_eq!(
        types(&evs),
        [
            "instance.qr",
            "instance.qr",
            "instance.paired",
            "instance.connected",
            "instance.disconnected",
            "instance.connected",
            "instance.logged_out",
        ]
    );
    assert_eq!(evs[0].1["attempt"], 1);
    assert_eq!(evs[1].1["attempt"], 2);
    assert!(evs[1].1["expires_at"].is_string());
    assert_eq!(evs[2].1["phone_number"], "6281234567890");
    assert_eq!(evs[2].1["lid"], "123456789@lid");
    assert_eq!(evs[3].1["previous_status"], "qr_pending");
    assert_eq!(evs[4].1["previous_status"], "online");
    assert_eq!(evs[4].1["reason"], "connection_lost");
    assert_eq!(evs[6].1["reason"], "logged_out");
    assert_eq!(evs[6].1["detail"], "logged out through the API");
    assert_eq!(evs[6].1["phone_number"], "6281234567890");
}

#[tokio::test]
async fn phone_side_logout() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, "6281234567891").await;
    app.engine
        .emit(
            id,
            EngineEvent::LoggedOut {
                reason: "unlinked from the phone".into(),
            },
        )
        .await;
    let gone = wait_status(&app, id, "logged_out").await;
    assert_eq!(gone["last_error"], "unlinked from the phone");
    eventually("keys wiped", || async {
        app.engine.calls().contains(&Call::Wipe(id)).then_some(())
    })
    .await;
    post(&app, id, "login")
        .await
        .assert_problem(410, "instance_logged_out");
    // A late event cannot revive it.
    app.engine
        .emit(
            id,
            EngineEvent::Connected {
                jid: None,
                phone_number: None,
            },
        )
        .await;
    settle(&app, id).await;
    assert_eq!(instance(&app, id).await["status"], "logged_out");
    assert_eq!(
        types(&events(&app, id).await).last(),
        Some(&"instance.logged_out")
    );
}

#[tokio::test]
async fn qr_exhaustion_returns_to_created() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;
    assert_eq!(post(&app, id, "login").await.status, 200);
    app.engine.emit(id, EngineEvent::QrExhausted).await;
    let back = wait_status(&app, id, "created").await;
    assert!(
        back["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("QR"))
    );
    send(app.req(Method::GET, &format!("/v1/instances/{id}/qr")))
        .await
        .assert_problem(404, "qr_not_available");
    let evs = events(&app, id).await;
    assert_eq!(types(&evs), ["instance.qr", "instance.disconnected"]);
    assert_eq!(evs[1].1["reason"], "qr_codes_exhausted");

    // Pairing can start over.
    let again = post(&app, id, "login").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["qr"]["attempt"], 1);
    let starts = app
        .engine
        .calls()
        .iter()
        .filter(|c| **c == Call::Start(id))
        .count();
    assert_eq!(starts, 2);
}

#[tokio::test]
async fn double_login_shares_one_session() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;
    let (a, b) = tokio::join!(post(&app, id, "login"), post(&app, id, "login"));
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body["qr"]["code"], b.body["qr"]["code"]);
    let starts = app
        .engine
        .calls()
        .iter()
        .filter(|c| **c == Call::Start(id))
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn errors_of_pairing_routes() {
    let app = TestApp::spawn().await;
    let unknown = Uuid::now_v7();
    for action in ["login", "logout"] {
        post(&app, unknown, action)
            .await
            .assert_problem(404, "instance_not_found");
    }
    send(app.req(Method::GET, &format!("/v1/instances/{unknown}/qr")))
        .await
        .assert_problem(404, "instance_not_found");

    let id = new_instance(&app).await;
    post(&app, id, "logout")
        .await
        .assert_problem(409, "instance_not_paired");
    send(app.req(Method::GET, &format!("/v1/instances/{id}/qr")))
        .await
        .assert_problem(404, "qr_not_available");

    app.engine.refuse_start(true);
    post(&app, id, "login")
        .await
        .assert_problem(502, "whatsapp_unavailable");
    app.engine.refuse_start(false);

    // A bad number never reaches the engine.
    let bad = send(
        app.req(Method::POST, &format!("/v1/instances/{id}/pair-code"))
            .json(&json!({"phone_number": "+1 000 000 0000"})),
    )
    .await;
    bad.assert_problem(422, "invalid_phone_number");
    assert!(
        bad.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("phone_number"))
    );
}

#[tokio::test]
async fn pair_code() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;
    let r = send(
        app.req(Method::POST, &format!("/v1/instances/{id}/pair-code"))
            .json(&json!({"phone_number": "+62 812-3456-7890"})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["code"], "SCRP7K2Q");
    assert_eq!(r.body["phone_number"], "6281234567890");
    assert!(
        app.engine
            .calls()
            .contains(&Call::PairCode(id, "6281234567890".into()))
    );
}

#[tokio::test]
async fn login_times_out_when_whatsapp_is_silent() {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f.merge(("whatsapp.answer_timeout_secs", 1)));
    let engine = ScriptedEngine::new();
    engine.silent(true);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    post(&app, id, "login")
        .await
        .assert_problem(504, "whatsapp_timeout");
}

#[tokio::test]
async fn stored_sessions_resume_after_a_restart() {
    let first = TestApp::spawn().await;
    let paired = new_instance(&first).await;
    pair_and_connect(&first, paired, "6281234567892").await;
    let never = new_instance(&first).await;
    let gone = new_instance(&first).await;
    {
        // As a crash would leave it: marked logged out, keys not yet wiped.
        let db = first.db.connect().await;
        ActiveModel {
            id: Set(gone),
            status: Set(Status::LoggedOut),
            ..Default::default()
        }
        .update(&db)
        .await
        .expect("update");
        db.close().await.ok();
    }
    let db = first.into_db();

    let engine = ScriptedEngine::new();
    engine.store_session(paired);
    let settings = settings(&db);
    let second = TestApp::spawn_scripted(db, settings, engine).await;
    let back = wait_status(&second, paired, "online").await;
    assert_eq!(back["phone_number"], "6281234567892");
    let calls = second.engine.calls();
    assert!(calls.contains(&Call::Start(paired)));
    assert!(
        !calls.contains(&Call::Start(never)),
        "unpaired instances stay idle"
    );
    assert!(
        calls.contains(&Call::Wipe(gone)),
        "an interrupted logout is finished"
    );
    assert_eq!(instance(&second, never).await["status"], "created");
}

#[tokio::test]
async fn bans_and_replaced_streams_are_recorded_with_their_reason() {
    let app = TestApp::spawn().await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, "6281234567895").await;
    app.engine
        .emit(
            id,
            EngineEvent::TemporaryBan {
                reason: "sent to too many people".into(),
                expires_in: Duration::from_secs(3600),
            },
        )
        .await;
    let banned = wait_status(&app, id, "disconnected").await;
    assert!(
        banned["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("temporarily banned") && e.contains("3600")),
        "{banned}"
    );
    app.engine
        .emit(
            id,
            EngineEvent::Connected {
                jid: None,
                phone_number: None,
            },
        )
        .await;
    wait_status(&app, id, "online").await;
    app.engine.emit(id, EngineEvent::StreamReplaced).await;
    let replaced = wait_status(&app, id, "disconnected").await;
    assert!(
        replaced["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("stream_replaced"))
    );
    let reasons: Vec<String> = events(&app, id)
        .await
        .into_iter()
        .filter(|(t, _)| t == "instance.disconnected")
        .map(|(_, d)| d["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reasons, ["temporary_ban", "stream_replaced"]);
}
