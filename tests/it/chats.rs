//! Edits, deletions, read marks and presence with the scripted engine:
//! what reaches the engine, the stored message and its events, the edit
//! window, bad input and scoped keys. The stanzas WhatsApp really gets are
//! proven against the simulator in `sim_outbound`.

use chrono::Utc;
use entity::messages;
use reqwest::Method;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::ChatPresence;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{Reply, TestApp, TestDb, send, settings_with};
use crate::pairing::{events, new_instance, pair_and_connect};

const SENDER: &str = "6281234560101";
const FRIEND: &str = "6281234560102";

async fn online() -> (TestApp, Uuid) {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f.merge(("messaging.default_region", "ID")));
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    (app, id)
}

async fn text(app: &TestApp, body: &str) -> String {
    let r = send(
        app.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": body })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["message_id"].as_str().expect("id").to_owned()
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = app.req(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

fn operations(engine: &ScriptedEngine) -> Vec<Call> {
    engine
        .calls()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Call::EditText { .. }
                    | Call::Revoke { .. }
                    | Call::MarkRead { .. }
                    | Call::ChatPresence { .. }
                    | Call::SetPresence { .. }
            )
        })
        .collect()
}

#[tokio::test]
async fn a_sent_text_is_edited_then_deleted() {
    let (app, id) = online().await;
    let mid = text(&app, "harga 10rb").await;
    let path = format!("/v1/instances/{id}/messages/{mid}");

    let r = call(
        &app,
        Method::PATCH,
        &path,
        Some(json!({ "text": "harga 12rb" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["edited_at"].is_string(), "{:?}", r.body);
    let r = call(&app, Method::DELETE, &format!("{path}?for=me"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["deleted_at"].is_string(), "{:?}", r.body);
    // Deleted only here: WhatsApp heard of the edit, not of a revoke.
    assert_eq!(
        operations(&app.engine),
        [Call::EditText {
            instance: id,
            to: format!("{FRIEND}@s.whatsapp.net"),
            message_id: mid.clone(),
            text: "harga 12rb".into(),
        }]
    );
    // A deleted message is not edited any more.
    call(&app, Method::PATCH, &path, Some(json!({ "text": "x" })))
        .await
        .assert_problem(409, "message_deleted");

    let other = text(&app, "salah kirim").await;
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/instances/{id}/messages/{other}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(operations(&app.engine).contains(&Call::Revoke {
        instance: id,
        to: format!("{FRIEND}@s.whatsapp.net"),
        message_id: other.clone(),
    }));

    let events = events(&app, id).await;
    let edited: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "message.edited")
        .collect();
    assert_eq!(edited.len(), 1, "{events:?}");
    assert_eq!(edited[0].1["message_id"], mid.as_str());
    assert_eq!(edited[0].1["text"], "harga 12rb");
    let deleted: Vec<_> = events
        .iter()
        .filter(|(t, _)| t == "message.deleted")
        .map(|(_, d)| (d["message_id"].clone(), d["for"].clone()))
        .collect();
    assert_eq!(
        deleted,
        [(json!(mid), json!("me")), (json!(other), json!("everyone"))]
    );
}

#[tokio::test]
async fn edits_close_after_fifteen_minutes_and_need_a_text_we_sent() {
    let (app, id) = online().await;
    let mid = text(&app, "lama").await;
    let db = app.db.connect().await;
    messages::Entity::update_many()
        .col_expr(
            messages::Column::CreatedAt,
            Expr::value(Utc::now() - chrono::Duration::minutes(16)),
        )
        .filter(messages::Column::WaMessageId.eq(mid.as_str()))
        .exec(&db)
        .await
        .expect("age the message");
    db.close().await.ok();
    let edit = |m: &str| {
        let path = format!("/v1/instances/{id}/messages/{m}");
        let app = &app;
        async move { call(app, Method::PATCH, &path, Some(json!({ "text": "baru" }))).await }
    };
    edit(&mid).await.assert_problem(409, "edit_window_closed");
    edit("3EB0NOTOURS")
        .await
        .assert_problem(404, "message_not_found");
    let r = send(
        app.req(Method::POST, &format!("/send/by-number/{SENDER}/location"))
            .json(&json!({ "to": FRIEND, "latitude": 1.0, "longitude": 1.0 })),
    )
    .await;
    let pin = r.body["message_id"].as_str().expect("id").to_owned();
    edit(&pin).await.assert_problem(422, "message_not_editable");
    call(
        &app,
        Method::PATCH,
        &format!("/v1/instances/{id}/messages/{pin}"),
        Some(json!({ "text": "" })),
    )
    .await
    .assert_problem(422, "invalid_body");
    call(
        &app,
        Method::DELETE,
        &format!("/v1/instances/{id}/messages/{pin}?for=nobody"),
        None,
    )
    .await
    .assert_problem(400, "invalid_parameter");
    call(
        &app,
        Method::DELETE,
        &format!("/v1/instances/{}/messages/{pin}", Uuid::now_v7()),
        None,
    )
    .await
    .assert_problem(404, "instance_not_found");
    assert!(operations(&app.engine).is_empty());
}

#[tokio::test]
async fn read_marks_chat_states_and_presence_reach_the_engine() {
    let (app, id) = online().await;
    let base = format!("/v1/instances/{id}");
    let r = call(
        &app,
        Method::POST,
        &format!("{base}/chats/0812-3456-0102/read"),
        Some(json!({ "message_ids": ["3EB0A", "3EB0B"] })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["chat_jid"], format!("{FRIEND}@s.whatsapp.net"));
    for state in ["typing", "recording", "paused"] {
        let r = call(
            &app,
            Method::POST,
            &format!("{base}/chats/{FRIEND}@s.whatsapp.net/presence"),
            Some(json!({ "state": state })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = call(
        &app,
        Method::PUT,
        &format!("{base}/presence"),
        Some(json!({ "available": false })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let chat = format!("{FRIEND}@s.whatsapp.net");
    let presence = |state| Call::ChatPresence {
        instance: id,
        chat: chat.clone(),
        state,
    };
    assert_eq!(
        operations(&app.engine),
        [
            Call::MarkRead {
                instance: id,
                chat: chat.clone(),
                message_ids: vec!["3EB0A".into(), "3EB0B".into()],
            },
            presence(ChatPresence::Typing),
            presence(ChatPresence::Recording),
            presence(ChatPresence::Paused),
            Call::SetPresence {
                instance: id,
                available: false,
            },
        ]
    );

    // Bad input.
    let bad = [
        (
            "chats/friend@example.com/read",
            json!({ "message_ids": ["x"] }),
            422,
            "invalid_chat",
        ),
        (
            "chats/12/read",
            json!({ "message_ids": ["x"] }),
            422,
            "invalid_phone_number",
        ),
        (
            "chats/6281299998888/read",
            json!({ "message_ids": ["x"] }),
            422,
            "number_not_on_whatsapp",
        ),
        (
            &*format!("chats/{FRIEND}/read"),
            json!({ "message_ids": [] }),
            422,
            "invalid_body",
        ),
        (
            &*format!("chats/{FRIEND}/presence"),
            json!({ "state": "dancing" }),
            422,
            "invalid_body",
        ),
    ];
    for (route, body, status, code) in bad {
        call(&app, Method::POST, &format!("{base}/{route}"), Some(body))
            .await
            .assert_problem(status, code);
    }
    call(
        &app,
        Method::PUT,
        &format!("{base}/presence"),
        Some(json!({ "available": "yes" })),
    )
    .await
    .assert_problem(422, "invalid_body");
    assert_eq!(operations(&app.engine).len(), 5);
}

#[tokio::test]
async fn operations_need_a_send_key_for_the_instance() {
    let (app, mine) = online().await;
    let mid = text(&app, "x").await;
    let other = new_instance(&app).await;
    let elsewhere = key_for(&app, other, "send").await;
    let reader = key_for(&app, mine, "read").await;
    let sender = key_for(&app, mine, "send").await;
    let edit = |key: &str| {
        app.http
            .patch(app.url(&format!("/v1/instances/{mine}/messages/{mid}")))
            .bearer_auth(key)
            .json(&json!({ "text": "y" }))
    };
    let presence = |key: &str| {
        app.http
            .put(app.url(&format!("/v1/instances/{mine}/presence")))
            .bearer_auth(key)
            .json(&json!({ "available": true }))
    };
    for key in [&elsewhere, &reader] {
        let r = send(edit(key)).await;
        assert!(matches!(r.status, 403 | 404), "{:?}", r.body);
        let r = send(presence(key)).await;
        assert!(matches!(r.status, 403 | 404), "{:?}", r.body);
    }
    assert!(operations(&app.engine).is_empty());
    assert_eq!(send(edit(&sender)).await.status, 200);
    assert_eq!(send(presence(&sender)).await.status, 200);
    assert_eq!(operations(&app.engine).len(), 2);
}

async fn key_for(app: &TestApp, instance: Uuid, scope: &str) -> String {
    let made = send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": [instance], "scopes": [scope], "name": "t" })),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    made.body["key"].as_str().expect("key").to_owned()
}
