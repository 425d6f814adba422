//! The conversation send routes (reaction, location, contact, poll) with
//! the scripted engine: what reaches the engine, bad input as problem+json,
//! and scoped keys. The content a contact really receives is proven
//! against the simulator in `sim_outbound`.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::OutgoingMessage;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{Reply, TestApp, TestDb, send, settings_with};
use crate::pairing::{new_instance, pair_and_connect};

const SENDER: &str = "6281234560001";
const FRIEND: &str = "6281234560002";

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

async fn post(app: &TestApp, route: &str, body: Value) -> Reply {
    send(
        app.req(
            Method::POST,
            &format!("/v1/send/by-number/{SENDER}/{route}"),
        )
        .json(&body),
    )
    .await
}

fn sent_messages(engine: &ScriptedEngine) -> Vec<OutgoingMessage> {
    engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::SendMessage { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_route_sends_a_tracked_message() {
    let (app, id) = online().await;
    let text = send(
        app.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "hi" })),
    )
    .await;
    let ours = text.body["message_id"].as_str().expect("id").to_owned();
    let cases = [
        (
            "reaction",
            json!({ "to": "0812-3456-0002", "message_id": ours, "emoji": "🙏" }),
            "reaction",
        ),
        (
            "location",
            json!({ "to": FRIEND, "latitude": 0.0, "longitude": -180.0 }),
            "location",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": [{"name": "a"}, {"name": "b"}] }),
            "poll",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [{ "display_name": "A", "phone_numbers": ["0812 1111 2222"] }] }),
            "contact",
        ),
    ];
    for (route, body, kind) in cases {
        let r = post(&app, route, body).await;
        assert_eq!(r.status, 200, "{route}: {:?}", r.body);
        assert_eq!(r.body["to"], FRIEND);
        let mid = r.body["message_id"].as_str().expect("id");
        let stored =
            send(app.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
        assert_eq!(stored.body["kind"], kind, "{:?}", stored.body);
        assert_eq!(stored.body["status"], "sent");
    }
    let sent = sent_messages(&app.engine);
    assert_eq!(
        sent[0],
        OutgoingMessage::Reaction {
            target_id: ours,
            from_me: true,
            emoji: "🙏".into()
        }
    );
    let OutgoingMessage::Contacts(cards) = &sent[3] else {
        panic!("{:?}", sent[3])
    };
    assert!(cards[0].vcard.contains("waid=6281211112222"), "{cards:?}");
    // A message this instance did not send is the contact's.
    let r = post(
        &app,
        "reaction",
        json!({ "to": FRIEND, "message_id": "3EB0FROMTHEM", "emoji": "👍" }),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(matches!(
        sent_messages(&app.engine).last(),
        Some(OutgoingMessage::Reaction { from_me: false, .. })
    ));
}

#[tokio::test]
async fn bad_input_is_a_problem_and_nothing_is_sent() {
    let (app, _id) = online().await;
    let big_vcard = format!("BEGIN:VCARD\nFN:x\nNOTE:{}\nEND:VCARD", "é".repeat(9000));
    let cases = [
        (
            "location",
            json!({ "to": FRIEND, "latitude": 91.0, "longitude": 0.0 }),
            422,
            "invalid_body",
        ),
        (
            "location",
            json!({ "to": FRIEND, "latitude": 0.0, "longitude": 180.5 }),
            422,
            "invalid_body",
        ),
        (
            "location",
            json!({ "to": FRIEND, "latitude": "north", "longitude": 0.0 }),
            422,
            "invalid_body",
        ),
        (
            "reaction",
            json!({ "to": FRIEND, "message_id": "X", "emoji": "ok" }),
            422,
            "invalid_emoji",
        ),
        (
            "reaction",
            json!({ "to": FRIEND, "message_id": "X", "emoji": "👍👎 " }),
            422,
            "invalid_emoji",
        ),
        (
            "reaction",
            json!({ "to": FRIEND, "message_id": "", "emoji": "👍" }),
            422,
            "invalid_body",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": [] }),
            422,
            "invalid_body",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": [{"name": "a"}] }),
            422,
            "invalid_body",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": (0..13).map(|i| json!({"name": i.to_string()})).collect::<Vec<_>>() }),
            422,
            "invalid_body",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": [{"name": "a"}, {"name": "a "}] }),
            422,
            "invalid_poll_options",
        ),
        (
            "poll",
            json!({ "to": FRIEND, "question": "?", "options": [{"name": "a"}, {"name": "b"}], "selectable_count": 3 }),
            422,
            "invalid_selectable_count",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [] }),
            422,
            "invalid_body",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [{ "display_name": "A" }] }),
            422,
            "invalid_contact",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [{ "vcard": "hello" }] }),
            422,
            "invalid_vcard",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [{ "vcard": big_vcard }] }),
            422,
            "vcard_too_large",
        ),
        (
            "contact",
            json!({ "to": FRIEND, "contacts": [{ "display_name": "A", "phone_numbers": ["12"] }] }),
            422,
            "invalid_phone_number",
        ),
        (
            "location",
            json!({ "to": "6281299998888", "latitude": 0.0, "longitude": 0.0 }),
            422,
            "number_not_on_whatsapp",
        ),
    ];
    for (route, body, status, code) in cases {
        post(&app, route, body).await.assert_problem(status, code);
    }
    assert!(sent_messages(&app.engine).is_empty());
}

#[tokio::test]
async fn a_key_sends_only_from_its_own_instances() {
    let (app, mine) = online().await;
    let other = new_instance(&app).await;
    let body = json!({ "to": FRIEND, "latitude": 1.0, "longitude": 2.0 });
    let as_key = |key: &str| {
        app.http
            .post(app.url(&format!("/send/by-number/{SENDER}/location")))
            .bearer_auth(key)
            .json(&body)
    };
    let elsewhere = key_for(&app, other, "send").await;
    send(as_key(&elsewhere))
        .await
        .assert_problem(404, "sender_not_found");
    let reader = key_for(&app, mine, "read").await;
    send(as_key(&reader))
        .await
        .assert_problem(404, "sender_not_found");
    let sender = key_for(&app, mine, "send").await;
    let r = send(as_key(&sender)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(sent_messages(&app.engine).len(), 1);
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
