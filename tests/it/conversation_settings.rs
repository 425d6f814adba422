//! Per-instance call and read settings, and the playground's voters and
//! callers, with the scripted engine: what the routes accept and refuse,
//! who may change them, and the events a real session would cause.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{events, instance, new_instance};

async fn online(app: &TestApp) -> (Uuid, String) {
    let id = new_instance(app).await;
    let login = send(app.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let shown = eventually("the instance online", || async {
        let i = instance(app, id).await;
        (i["status"] == "online").then_some(i)
    })
    .await;
    (
        id,
        shown["phone_number"].as_str().expect("a number").to_owned(),
    )
}

async fn playground() -> TestApp {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f);
    let engine = ScriptedEngine::new();
    engine.playground(6_281_300_000_000, Duration::from_millis(20));
    TestApp::spawn_scripted(db, settings, engine).await
}

async fn event_of(app: &TestApp, id: Uuid, kind: &str) -> Value {
    eventually(kind, || async {
        events(app, id)
            .await
            .into_iter()
            .find(|(t, _)| t == kind)
            .map(|(_, d)| d)
    })
    .await
}

#[tokio::test]
async fn settings_default_off_and_change_with_patch() {
    let app = playground().await;
    let (id, _) = online(&app).await;
    let shown = instance(&app, id).await;
    assert_eq!(shown["reject_calls"], false);
    assert_eq!(shown["auto_read"], false);
    assert!(shown.get("call_reply").is_none_or(Value::is_null));
    let path = format!("/v1/instances/{id}");
    let r = send(app.req(Method::PATCH, &path).json(&json!({
        "reject_calls": true, "call_reply": "nanti saya telepon", "auto_read": true
    })))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["call_reply"], "nanti saya telepon");
    // Absent fields stay; `null` removes the reply.
    let r = send(
        app.req(Method::PATCH, &path)
            .json(&json!({ "call_reply": null })),
    )
    .await;
    assert_eq!(r.body["reject_calls"], true, "{:?}", r.body);
    assert_eq!(r.body["auto_read"], true);
    assert!(r.body.get("call_reply").is_none_or(Value::is_null));
    assert_eq!(instance(&app, id).await["reject_calls"], true);

    for bad in [
        json!({ "reject_calls": "yes" }),
        json!({ "call_reply": "" }),
        json!({ "call_reply": "x".repeat(4097) }),
        json!({ "auto_read": 1 }),
        json!({ "reject_call": true }),
    ] {
        send(app.req(Method::PATCH, &path).json(&bad))
            .await
            .assert_problem(422, "invalid_body");
    }
    let chat = format!("/v1/instances/{id}/chats/6281300009999/read");
    send(
        app.req(Method::POST, &chat)
            .json(&json!({ "all": true, "message_ids": ["3EB0A"] })),
    )
    .await
    .assert_problem(422, "invalid_read_request");
    send(
        app.req(Method::POST, &chat)
            .json(&json!({ "message_ids": [] })),
    )
    .await
    .assert_problem(422, "invalid_body");
}

#[tokio::test]
async fn only_a_manage_key_changes_settings() {
    let app = playground().await;
    let (mine, _) = online(&app).await;
    let other = new_instance(&app).await;
    let key = |instance: Uuid, scope: &'static str| {
        let app = &app;
        async move {
            let made = send(
                app.req(Method::POST, "/v1/keys")
                    .json(&json!({ "instances": [instance], "scopes": [scope], "name": "t" })),
            )
            .await;
            made.body["key"].as_str().expect("key").to_owned()
        }
    };
    let patch = |key: String, id: Uuid| {
        app.http
            .patch(app.url(&format!("/v1/instances/{id}")))
            .bearer_auth(key)
            .json(&json!({ "reject_calls": true }))
    };
    send(patch(key(mine, "send").await, mine))
        .await
        .assert_problem(403, "insufficient_scope");
    send(patch(key(other, "manage").await, mine))
        .await
        .assert_problem(404, "instance_not_found");
    let r = send(patch(key(mine, "manage").await, mine)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["reject_calls"], true);
}

#[tokio::test]
async fn the_playground_votes_on_polls_and_calls_back() {
    let app = playground().await;
    let (id, number) = online(&app).await;
    let friend = "6281300001111";
    let r = send(
        app.req(Method::POST, &format!("/v1/send/by-number/{number}/poll"))
            .json(&json!({
                "to": friend, "question": "Kopi?",
                "options": [{ "name": "Hitam" }, { "name": "Susu" }]
            })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let poll = r.body["message_id"].as_str().expect("id").to_owned();
    let vote = event_of(&app, id, "message.poll_vote").await;
    assert_eq!(vote["message_id"], poll.as_str(), "{vote}");
    assert_eq!(vote["selected_options"], json!(["Hitam"]), "{vote}");
    assert_eq!(vote["tally"][0]["votes"], 1, "{vote}");
    assert_eq!(vote["tally"][1]["votes"], 0, "{vote}");
    assert_eq!(vote["voter"]["phone_number"], friend, "{vote}");

    // A reply quoting the poll, then a call asked for and rejected.
    let r = send(
        app.req(Method::PATCH, &format!("/v1/instances/{id}"))
            .json(&json!({ "reject_calls": true, "call_reply": "sibuk" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = send(
        app.req(Method::POST, &format!("/v1/send/by-number/{number}"))
            .json(&json!({ "to": friend, "text": "call me", "reply_to": poll })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let received = event_of(&app, id, "call.received").await;
    assert_eq!(received["media"], "voice", "{received}");
    let rejected = event_of(&app, id, "call.rejected").await;
    assert_eq!(rejected["call_id"], received["call_id"]);
    let calls = app.engine.calls();
    assert!(calls.iter().any(|c| matches!(c, Call::RejectCall { .. })));
    let texts: Vec<_> = calls
        .iter()
        .filter_map(|c| match c {
            Call::SendText { text, context, .. } => Some((text.clone(), context.clone())),
            _ => None,
        })
        .collect();
    let quoted = texts[0].1.quote.as_ref().expect("a quote");
    assert_eq!(quoted.message_id, poll);
    assert_eq!(quoted.sender_jid, format!("{number}@s.whatsapp.net"));
    assert!(matches!(
        quoted.body,
        Some(wagate::engine::Body::Poll { ref question, .. }) if question == "Kopi?"
    ));
    assert_eq!(texts.last().map(|t| t.0.as_str()), Some("sibuk"));
}
