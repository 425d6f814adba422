//! `wagate-scripted`'s playground, in process: each instance comes online
//! with a number of its own, and what it sends is delivered, then read.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{events, instance, new_instance, types};

async fn online(app: &TestApp) -> (Uuid, String) {
    let id = new_instance(app).await;
    let login = send(app.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let shown = eventually("the instance online", || async {
        let i = instance(app, id).await;
        (i["status"] == "online").then_some(i)
    })
    .await;
    let number = shown["phone_number"].as_str().expect("a number").to_owned();
    (id, number)
}

#[tokio::test]
async fn instances_get_numbers_and_sends_are_delivered_then_read() {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f);
    let engine = ScriptedEngine::new();
    engine.playground(6_281_200_000_000, Duration::from_millis(50));
    let app = TestApp::spawn_scripted(db, settings, engine).await;

    let (first, number) = online(&app).await;
    assert_eq!(number, "6281200000000");
    let (_, second) = online(&app).await;
    assert_eq!(second, "6281200000001");

    for (route, body) in [
        ("", json!({ "to": "+62 812 0000 1111", "text": "halo" })),
        (
            "/poll",
            json!({ "to": "6281200001111", "question": "?", "options": [{"name": "a"}, {"name": "b"}] }),
        ),
    ] {
        let r = send(
            app.req(Method::POST, &format!("/v1/send/by-number/{number}{route}"))
                .json(&body),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let mid = r.body["message_id"].as_str().expect("id").to_owned();
        let path = format!("/v1/instances/{first}/messages/{mid}");
        eventually("the message read", || async {
            let m = send(app.req(Method::GET, &path)).await;
            (m.body["status"] == "read").then_some(())
        })
        .await;
        let events = events(&app, first).await;
        let about: Vec<&str> = types(&events)
            .into_iter()
            .zip(&events)
            .filter(|(_, (_, d))| d["message_id"] == mid.as_str())
            // The poll's recipient votes later (`conversation_settings`).
            .filter(|(t, _)| *t != "message.poll_vote")
            .map(|(t, _)| t)
            .collect();
        assert_eq!(about, ["message.sent", "message.delivered", "message.read"]);
    }
}
