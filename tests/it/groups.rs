//! The group routes on the scripted engine, whose pretend WhatsApp is
//! shared by every instance: create, read, change, participants, invite
//! links, joining (with and without approval), leaving, their `group.*`
//! events as each member instance records them, bad input, state and
//! scopes. The stanzas WhatsApp really gets are proven in `sim_groups`.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;

use crate::harness::{Reply, TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{events, new_instance, pair_and_connect};

const ADMIN: &str = "6281234561001";
const MEMBER: &str = "6281234561002";
const JOINER: &str = "6281234561003";
/// On WhatsApp, but no instance of this gateway.
const FRIEND: &str = "6281234561004";
const STRANGER: &str = "6281234561999";

async fn app() -> TestApp {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f.merge(("messaging.default_region", "ID")));
    let engine = ScriptedEngine::new();
    for number in [MEMBER, JOINER, FRIEND] {
        engine.register_number(number);
    }
    TestApp::spawn_scripted(db, settings, engine).await
}

async fn online(app: &TestApp, phone: &str) -> Uuid {
    let id = new_instance(app).await;
    pair_and_connect(app, id, phone).await;
    id
}

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let mut req = app.req(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req).await
}

/// The first `kind` event of `id` that `matches`, waiting for it.
async fn event(app: &TestApp, id: Uuid, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("{kind} of {id}"), || async {
        events(app, id)
            .await
            .into_iter()
            .find(|(t, data)| t == kind && matches(data))
            .map(|(_, data)| data)
    })
    .await
}

fn person(phone: &str) -> Value {
    json!({
        "jid": format!("{phone}@s.whatsapp.net"),
        "phone_number": phone,
        "lid": format!("{}@lid", phone.chars().rev().collect::<String>()),
    })
}

#[tokio::test]
async fn a_group_is_created_managed_joined_and_left() {
    let app = app().await;
    let admin = online(&app, ADMIN).await;
    let member = online(&app, MEMBER).await;
    let joiner = online(&app, JOINER).await;
    let groups = format!("/v1/instances/{admin}/groups");

    let created = call(
        &app,
        Method::POST,
        &groups,
        Some(json!({ "subject": "Toko Makmur", "participants": [MEMBER, FRIEND, STRANGER] })),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let group = created.body["group"]["jid"]
        .as_str()
        .expect("jid")
        .to_owned();
    assert!(group.ends_with("@g.us"), "{group}");
    let results = &created.body["participants"];
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[0]["person"], person(MEMBER));
    assert_eq!(results[1]["ok"], true);
    assert_eq!(results[2]["participant"], STRANGER);
    assert_eq!(results[2]["ok"], false);
    assert_eq!(results[2]["error"]["code"], "participant_not_on_whatsapp");
    assert_eq!(results[2]["person"], Value::Null);
    let roles: Vec<(&str, &str)> = created.body["group"]["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            (
                p["phone_number"].as_str().expect("number"),
                p["role"].as_str().expect("role"),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            (ADMIN, "superadmin"),
            (MEMBER, "member"),
            (FRIEND, "member")
        ]
    );
    let joined = event(&app, admin, "group.joined", |d| d["group"]["jid"] == group).await;
    assert_eq!(joined["how"], "created");
    assert_eq!(joined["group"]["subject"], "Toko Makmur");
    let added = event(&app, member, "group.joined", |d| d["group"]["jid"] == group).await;
    assert_eq!(added["how"], "added");
    assert_eq!(added["by"]["phone_number"], ADMIN);

    // Each instance lists it, as admin or not.
    let listed = call(&app, Method::GET, &groups, None).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(
        listed.body["items"],
        json!([{ "jid": group, "subject": "Toko Makmur", "size": 3, "is_admin": true }])
    );
    let theirs = call(
        &app,
        Method::GET,
        &format!("/v1/instances/{member}/groups"),
        None,
    )
    .await;
    assert_eq!(theirs.body["items"][0]["is_admin"], false);
    let mine = format!("{groups}/{group}");
    let theirs = format!("/v1/instances/{member}/groups/{group}");

    // Only an admin changes settings; a member gets 403.
    call(
        &app,
        Method::PATCH,
        &theirs,
        Some(json!({ "announce": true })),
    )
    .await
    .assert_problem(403, "not_a_group_admin");
    let patched = call(
        &app,
        Method::PATCH,
        &mine,
        Some(json!({ "subject": "Toko Makmur Jaya", "description": "Pesanan", "ephemeral_seconds": 604800 })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["subject"], "Toko Makmur Jaya");
    assert_eq!(patched.body["description"], "Pesanan");
    assert_eq!(patched.body["settings"]["ephemeral_seconds"], 604800);
    assert_eq!(patched.body["owner"], person(ADMIN));
    let updated = event(&app, member, "group.updated", |d| {
        d["changes"]["subject"] == "Toko Makmur Jaya"
    })
    .await;
    assert_eq!(updated["changes"]["description"], "Pesanan");
    assert_eq!(updated["by"]["phone_number"], ADMIN);
    call(
        &app,
        Method::PATCH,
        &mine,
        Some(json!({ "ephemeral_seconds": 1000 })),
    )
    .await
    .assert_problem(422, "invalid_body");

    // Participants, each with its own outcome.
    let participants = format!("{mine}/participants");
    let promoted = call(
        &app,
        Method::POST,
        &participants,
        Some(json!({ "action": "promote", "participants": [MEMBER, STRANGER] })),
    )
    .await;
    assert_eq!(promoted.status, 200, "{:?}", promoted.body);
    assert_eq!(promoted.body["results"][0]["ok"], true);
    assert_eq!(
        promoted.body["results"][1]["error"]["code"],
        "not_a_participant"
    );
    let change = event(&app, member, "group.participants", |d| {
        d["action"] == "promoted"
    })
    .await;
    assert_eq!(change["participants"], json!([person(MEMBER)]));
    assert_eq!(change["by"], person(ADMIN));
    let removed = call(
        &app,
        Method::POST,
        &participants,
        Some(json!({ "action": "remove", "participants": [FRIEND] })),
    )
    .await;
    assert_eq!(removed.body["results"][0]["ok"], true, "{:?}", removed.body);
    let again = call(
        &app,
        Method::POST,
        &participants,
        Some(json!({ "action": "add", "participants": [MEMBER] })),
    )
    .await;
    assert_eq!(
        again.body["results"][0]["error"]["code"],
        "already_a_participant"
    );
    event(&app, admin, "group.participants", |d| {
        d["action"] == "removed" && d["participants"] == json!([person(FRIEND)])
    })
    .await;

    // Invite links: a revoked one no longer lets anyone in.
    let link = call(&app, Method::GET, &format!("{mine}/invite-link"), None).await;
    assert_eq!(link.status, 200, "{:?}", link.body);
    let old = link.body["invite_code"].as_str().expect("code").to_owned();
    let revoked = call(
        &app,
        Method::POST,
        &format!("{mine}/invite-link/revoke"),
        None,
    )
    .await;
    let new = revoked.body["invite_link"]
        .as_str()
        .expect("link")
        .to_owned();
    assert!(new.starts_with("https://chat.whatsapp.com/"), "{new}");
    assert_ne!(revoked.body["invite_code"], old);
    let join = format!("/v1/instances/{joiner}/groups/join");
    call(&app, Method::POST, &join, Some(json!({ "invite": old })))
        .await
        .assert_problem(404, "invite_not_found");
    let joined = call(&app, Method::POST, &join, Some(json!({ "invite": new }))).await;
    assert_eq!(joined.status, 200, "{:?}", joined.body);
    assert_eq!(
        joined.body,
        json!({ "group_jid": group, "state": "joined" })
    );
    let how = event(&app, joiner, "group.joined", |d| d["group"]["jid"] == group).await;
    assert_eq!(how["how"], "invite");

    // Leaving, then asking to come back where admins approve.
    let theirs_leave = format!("/v1/instances/{joiner}/groups/{group}/leave");
    let left = call(&app, Method::POST, &theirs_leave, None).await;
    assert_eq!(left.status, 200, "{:?}", left.body);
    let gone = event(&app, joiner, "group.left", |d| d["group"]["jid"] == group).await;
    assert_eq!(gone["how"], "left");
    call(
        &app,
        Method::GET,
        &format!("/v1/instances/{joiner}/groups/{group}"),
        None,
    )
    .await
    .assert_problem(403, "not_a_group_participant");
    call(
        &app,
        Method::PATCH,
        &mine,
        Some(json!({ "approval_required": true })),
    )
    .await;
    let pending = call(&app, Method::POST, &join, Some(json!({ "invite": new }))).await;
    assert_eq!(
        pending.body["state"], "pending_approval",
        "{:?}",
        pending.body
    );
    let asked = event(&app, admin, "group.membership_request", |_| true).await;
    assert_eq!(asked["requesters"], json!([person(JOINER)]));
    assert_eq!(asked["state"], "created");
    let requests = call(
        &app,
        Method::GET,
        &format!("{mine}/membership-requests"),
        None,
    )
    .await;
    assert_eq!(requests.body["items"][0]["phone_number"], JOINER);
    let approved = call(
        &app,
        Method::POST,
        &format!("{mine}/membership-requests/approve"),
        Some(json!({ "participants": [JOINER] })),
    )
    .await;
    assert_eq!(
        approved.body["results"][0]["ok"], true,
        "{:?}",
        approved.body
    );
    event(&app, joiner, "group.joined", |d| d["how"] == "approved").await;

    // Removed by an admin, an instance hears it left.
    call(
        &app,
        Method::POST,
        &participants,
        Some(json!({ "action": "remove", "participants": [MEMBER] })),
    )
    .await;
    let removed = event(&app, member, "group.left", |_| true).await;
    assert_eq!(removed["how"], "removed");
    assert_eq!(removed["by"], person(ADMIN));
}

#[tokio::test]
async fn bad_groups_and_bad_input_are_problems() {
    let app = app().await;
    let admin = online(&app, ADMIN).await;
    let groups = format!("/v1/instances/{admin}/groups");
    call(
        &app,
        Method::GET,
        &format!("{groups}/120363000000009999@g.us"),
        None,
    )
    .await
    .assert_problem(404, "group_not_found");
    call(
        &app,
        Method::GET,
        &format!("{groups}/{FRIEND}@s.whatsapp.net"),
        None,
    )
    .await
    .assert_problem(400, "invalid_parameter");
    call(
        &app,
        Method::POST,
        &groups,
        Some(json!({ "subject": "", "participants": [] })),
    )
    .await
    .assert_problem(422, "invalid_body");
    call(
        &app,
        Method::POST,
        &groups,
        Some(json!({ "subject": "x", "participants": ["12@example.com"] })),
    )
    .await
    .assert_problem(422, "invalid_participant");
    call(
        &app,
        Method::POST,
        &format!("{groups}/join"),
        Some(json!({ "invite": "https://chat.whatsapp.com/NOPE" })),
    )
    .await
    .assert_problem(404, "invite_not_found");

    // An instance offline has no session to ask.
    let offline = new_instance(&app).await;
    call(
        &app,
        Method::GET,
        &format!("/v1/instances/{offline}/groups"),
        None,
    )
    .await
    .assert_problem(409, "instance_not_connected");
}

#[tokio::test]
async fn reading_groups_needs_read_and_changing_them_manage() {
    let app = app().await;
    let admin = online(&app, ADMIN).await;
    let made = send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": [admin], "scopes": ["read"], "name": "reader" })),
    )
    .await;
    let reader = made.body["key"].as_str().expect("key").to_owned();
    let groups = app.url(&format!("/v1/instances/{admin}/groups"));
    let listed = send(app.http.get(&groups).bearer_auth(&reader)).await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    send(
        app.http
            .post(&groups)
            .bearer_auth(&reader)
            .json(&json!({ "subject": "x", "participants": [] })),
    )
    .await
    .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn a_member_sends_to_a_group_and_no_one_else_does() {
    let app = app().await;
    let admin = online(&app, ADMIN).await;
    online(&app, JOINER).await;
    let created = call(
        &app,
        Method::POST,
        &format!("/v1/instances/{admin}/groups"),
        Some(json!({ "subject": "Kurir", "participants": [MEMBER] })),
    )
    .await;
    let group = created.body["group"]["jid"]
        .as_str()
        .expect("jid")
        .to_owned();
    let sent = call(
        &app,
        Method::POST,
        &format!("/v1/send/by-number/{ADMIN}"),
        Some(json!({ "to": group, "text": "Paket sudah dikirim" })),
    )
    .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body["to_jid"], group);
    assert!(app.engine.calls().iter().any(|c| matches!(
        c,
        wagate::engine::scripted::Call::SendText { to, text, .. }
            if *to == group && text == "Paket sudah dikirim"
    )));
    // Not a number: no directory lookup was made for it.
    assert!(!app.engine.calls().iter().any(|c| matches!(
        c,
        wagate::engine::scripted::Call::CheckNumbers(_, numbers) if numbers.contains(&group)
    )));
    let sent = event(&app, admin, "message.sent", |_| true).await;
    assert_eq!(sent["to_jid"], group, "{sent:?}");

    call(
        &app,
        Method::POST,
        &format!("/v1/send/by-number/{JOINER}"),
        Some(json!({ "to": group, "text": "halo" })),
    )
    .await
    .assert_problem(403, "not_a_group_participant");
    call(
        &app,
        Method::POST,
        &format!("/v1/send/by-number/{ADMIN}"),
        Some(json!({ "to": "120363000000009999@g.us", "text": "halo" })),
    )
    .await
    .assert_problem(404, "group_not_found");
    call(
        &app,
        Method::POST,
        &format!("/v1/send/by-number/{ADMIN}"),
        Some(json!({ "to": "12@example.com", "text": "halo" })),
    )
    .await
    .assert_problem(422, "invalid_body");
}

fn group_message(chat: &str, id: &str) -> wagate::engine::EngineEvent {
    use wagate::engine::{Content, EngineEvent, Inbound, Party};
    EngineEvent::Message(Box::new(Inbound {
        message_id: id.to_owned(),
        from: Party {
            jid: format!("{MEMBER}@s.whatsapp.net"),
            phone_number: Some(MEMBER.into()),
            lid: None,
        },
        chat: chat.to_owned(),
        timestamp: chrono::Utc::now(),
        from_me: false,
        chat_subject: None,
        content: Content::Text {
            text: "siap".into(),
            quoted: None,
            mentions: Vec::new(),
        },
    }))
}

#[tokio::test]
async fn an_instance_ignoring_groups_records_none_of_their_messages() {
    let app = app().await;
    let id = online(&app, ADMIN).await;
    let group = "120363000000000077@g.us";
    let direct = format!("{MEMBER}@s.whatsapp.net");
    let patched = call(
        &app,
        Method::PATCH,
        &format!("/v1/instances/{id}"),
        Some(json!({ "ignore_groups": true })),
    )
    .await;
    assert_eq!(patched.body["ignore_groups"], true, "{:?}", patched.body);
    assert!(
        app.engine
            .emit(id, group_message(group, "3EB0GROUP1"))
            .await
    );
    assert!(
        app.engine
            .emit(id, group_message(&direct, "3EB0DIRECT1"))
            .await
    );
    // One lane applies an instance's events in order: the direct message
    // recorded means the group one before it was handled.
    event(&app, id, "message.received", |d| {
        d["message_id"] == "3EB0DIRECT1"
    })
    .await;
    let received: Vec<Value> = events(&app, id)
        .await
        .into_iter()
        .filter(|(t, _)| t == "message.received")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(received.len(), 1, "{received:?}");

    call(
        &app,
        Method::PATCH,
        &format!("/v1/instances/{id}"),
        Some(json!({ "ignore_groups": false })),
    )
    .await;
    assert!(
        app.engine
            .emit(id, group_message(group, "3EB0GROUP2"))
            .await
    );
    let kept = event(&app, id, "message.received", |d| {
        d["message_id"] == "3EB0GROUP2"
    })
    .await;
    assert_eq!(kept["chat"], group);
    assert_eq!(kept["sender"]["phone_number"], MEMBER);
}
