//! Issue 12's history and LIDs with the scripted engine: both directions
//! listed, filtered and paged; chats with their last message and unread
//! count; the recipient's LID on sent messages; contact lookups.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;
use wagate::engine::{Content, EngineEvent, Inbound, Party};

use crate::harness::{TestApp, TestDb, send, settings_with};
use crate::pairing::{events, new_instance, pair_and_connect, settle};

const SENDER: &str = "6281234567890";
const FRIEND: &str = "6281299990000";
/// The LID the scripted directory gives FRIEND.
const FRIEND_LID: &str = "0000999921826@lid";
const OTHER: &str = "6281377770000";

async fn online() -> (TestApp, Uuid) {
    online_with(|f| f).await
}

async fn online_with(tweak: impl FnOnce(figment::Figment) -> figment::Figment) -> (TestApp, Uuid) {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| tweak(f.merge(("messaging.default_region", "ID"))));
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    (app, id)
}

async fn inbound(app: &TestApp, id: Uuid, message_id: &str, from: Party, content: Content) {
    app.engine
        .emit(
            id,
            EngineEvent::Message(Box::new(Inbound {
                from_me: false,
                chat_subject: None,
                message_id: message_id.into(),
                chat: from.jid.clone(),
                from,
                timestamp: chrono::Utc::now(),
                content,
            })),
        )
        .await;
    settle(app, id).await;
}

fn friend_by_lid() -> Party {
    Party {
        jid: FRIEND_LID.into(),
        phone_number: Some(FRIEND.into()),
        lid: Some(FRIEND_LID.into()),
    }
}

fn text(t: &str) -> Content {
    Content::Text {
        text: t.into(),
        quoted: None,
        mentions: Vec::new(),
    }
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = send(app.req(Method::GET, path)).await;
    (r.status, r.body)
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["message_id"].as_str().expect("id").to_owned())
        .collect()
}

/// Two texts to FRIEND, then FRIEND (by LID) a text, a location and a
/// reaction, then OTHER a text. Returns the ids oldest first, reaction
/// left out.
async fn conversation(app: &TestApp, id: Uuid) -> Vec<String> {
    let mut order = Vec::new();
    for body in ["halo", "ada promo"] {
        let r = send(
            app.req(Method::POST, &format!("/send/by-number/{SENDER}"))
                .json(&json!({ "to": FRIEND, "text": body })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        order.push(r.body["message_id"].as_str().expect("id").to_owned());
    }
    inbound(app, id, "3EB0IN1", friend_by_lid(), text("mau dong")).await;
    let pin = Content::Location {
        latitude: -6.2,
        longitude: 106.8,
        name: Some("Toko Kopi".into()),
        address: None,
        live: false,
    };
    inbound(app, id, "3EB0IN2", friend_by_lid(), pin).await;
    let like = Content::Reaction {
        target_id: order[1].clone(),
        emoji: "🔥".into(),
    };
    inbound(app, id, "3EB0IN3", friend_by_lid(), like).await;
    let other = Party {
        jid: format!("{OTHER}@s.whatsapp.net"),
        phone_number: Some(OTHER.into()),
        lid: None,
    };
    inbound(app, id, "3EB0IN4", other, text("permisi")).await;
    order.extend(["3EB0IN1", "3EB0IN2", "3EB0IN4"].map(String::from));
    order
}

#[tokio::test]
async fn the_history_lists_both_directions_filtered_and_paged() {
    let (app, id) = online().await;
    let order = conversation(&app, id).await;
    let newest_first: Vec<String> = order.iter().rev().cloned().collect();
    let base = format!("/v1/instances/{id}/messages");

    let (status, all) = get(&app, &base).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), newest_first, "{all}");
    assert!(all["next_cursor"].is_null(), "{all}");
    let first_in = &all["items"][2];
    assert_eq!(first_in["direction"], "in", "{all}");
    assert_eq!(first_in["sender"]["phone_number"], FRIEND, "{all}");
    assert_eq!(first_in["sender"]["lid"], FRIEND_LID, "{all}");
    assert_eq!(all["items"][3]["reactions"][0]["emoji"], "🔥", "{all}");

    // One page at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}?limit=2&cursor={c}"),
            None => format!("{base}?limit=2"),
        };
        let (status, page) = get(&app, &path).await;
        assert_eq!(status, 200, "{page}");
        assert!(ids(&page).len() <= 2, "{page}");
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, newest_first);

    let filtered = |query: &str| format!("{base}?{query}");
    let (_, page) = get(&app, &filtered("direction=in")).await;
    assert_eq!(ids(&page), ["3EB0IN4", "3EB0IN2", "3EB0IN1"], "{page}");
    let (_, page) = get(&app, &filtered("direction=out")).await;
    assert_eq!(ids(&page), [order[1].clone(), order[0].clone()], "{page}");
    let (_, page) = get(&app, &filtered("kind=location")).await;
    assert_eq!(ids(&page), ["3EB0IN2"], "{page}");
    // A person's chat by number finds what they sent by LID, and back.
    for chat in [FRIEND, FRIEND_LID] {
        let (_, page) = get(&app, &filtered(&format!("chat={chat}"))).await;
        assert_eq!(ids(&page), newest_first[1..].to_vec(), "{chat}: {page}");
    }
    let (_, page) = get(&app, &filtered("status=sent")).await;
    assert_eq!(ids(&page).len(), 2, "{page}");
    let (_, page) = get(&app, &filtered("since=2999-01-01T00:00:00Z")).await;
    assert!(ids(&page).is_empty(), "{page}");
    let (_, page) = get(&app, &filtered("until=2999-01-01T00:00:00Z&limit=200")).await;
    assert_eq!(ids(&page).len(), 5, "{page}");

    // The old paging: sent messages oldest first.
    let (_, page) = get(&app, &filtered(&format!("after={}", Uuid::nil()))).await;
    assert_eq!(ids(&page), order[..2].to_vec(), "{page}");

    for bad in [
        "cursor=not-a-cursor",
        "limit=201",
        "kind=gif",
        "direction=sideways",
        "chat=someone",
        "since=yesterday",
    ] {
        let (status, body) = get(&app, &filtered(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_parameter", "{bad}: {body}");
    }
    let (status, body) = get(&app, &filtered("cursor=AAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(status, 200, "a well-formed cursor pages: {body}");
}

#[tokio::test]
async fn chats_show_their_last_message_and_unread_count() {
    let (app, id) = online().await;
    conversation(&app, id).await;
    let base = format!("/v1/instances/{id}/chats");
    let (status, page) = get(&app, &base).await;
    assert_eq!(status, 200, "{page}");
    let chats = page["items"].as_array().expect("items");
    assert_eq!(chats.len(), 2, "{page}");
    assert_eq!(chats[0]["chat"], format!("{OTHER}@s.whatsapp.net"));
    assert_eq!(chats[0]["unread_count"], 1);
    assert_eq!(chats[0]["last_message"]["message_id"], "3EB0IN4");
    assert_eq!(chats[0]["last_message"]["preview"], "permisi");
    assert_eq!(chats[0]["last_message"]["direction"], "in");
    // Sent by number and received by LID: one chat.
    assert_eq!(chats[1]["chat"], format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(chats[1]["unread_count"], 2, "{page}");
    assert_eq!(chats[1]["last_message"]["message_id"], "3EB0IN2");
    assert_eq!(chats[1]["last_message"]["kind"], "location");
    assert_eq!(chats[1]["last_message"]["preview"], "Toko Kopi");

    let (_, first) = get(&app, &format!("{base}?limit=1")).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    let next = first["next_cursor"].as_str().expect("a next page");
    let (_, second) = get(&app, &format!("{base}?limit=1&cursor={next}")).await;
    assert_eq!(
        second["items"][0]["chat"],
        format!("{FRIEND}@s.whatsapp.net")
    );
    assert!(second["next_cursor"].is_null(), "{second}");
    let (status, body) = get(&app, &format!("{base}?cursor=bm9wZQ")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn sent_messages_name_the_recipients_lid_and_lookups_answer_the_other_half() {
    let (app, id) = online().await;
    let r = send(
        app.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "halo" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    settle(&app, id).await;
    let evs = events(&app, id).await;
    let (_, sent) = evs
        .iter()
        .find(|(t, _)| t == "message.sent")
        .expect("message.sent");
    assert_eq!(sent["origin"], "api", "{sent}");
    assert_eq!(
        sent["recipient"],
        json!({
            "jid": format!("{FRIEND}@s.whatsapp.net"),
            "phone_number": FRIEND,
            "lid": FRIEND_LID,
        })
    );
    let (_, stored) = get(&app, &format!("/v1/instances/{id}/messages/{mid}")).await;
    assert_eq!(stored["recipient"]["lid"], FRIEND_LID, "{stored}");

    let lookup = format!("/v1/instances/{id}/contacts/lookup");
    let (status, by_phone) = get(&app, &format!("{lookup}?phone=%2B{FRIEND}")).await;
    assert_eq!(status, 200, "{by_phone}");
    assert_eq!(by_phone["lid"], FRIEND_LID, "{by_phone}");
    assert_eq!(by_phone["phone_number"], FRIEND, "{by_phone}");
    let (status, by_lid) = get(&app, &format!("{lookup}?lid={FRIEND_LID}")).await;
    assert_eq!(status, 200, "{by_lid}");
    assert_eq!(by_lid["phone_number"], FRIEND, "{by_lid}");
    assert_eq!(by_lid["jid"], FRIEND_LID, "{by_lid}");

    let (status, body) = get(&app, &format!("{lookup}?phone={OTHER}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "contact_unknown");
    for both_or_neither in [format!("{lookup}?phone={FRIEND}&lid=1@lid"), lookup.clone()] {
        let (status, body) = get(&app, &both_or_neither).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "invalid_lookup");
    }
    let (status, body) = get(&app, &format!("{lookup}?lid=abc")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn retention_deletes_old_messages_of_both_directions_and_their_votes() {
    use chrono::{Duration, Utc};
    use entity::{inbound_messages, messages, poll_votes};
    use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    // Off by default: nothing goes. With 30 days: what is older goes.
    for (days, left) in [(None, 5), (Some(30), 3)] {
        let (app, id) = match days {
            Some(d) => online_with(|f| f.merge(("messages.retention_days", d))).await,
            None => online().await,
        };
        let order = conversation(&app, id).await;
        let conn = app.db.connect().await;
        let old = Utc::now() - Duration::days(40);
        messages::Entity::update_many()
            .col_expr(messages::Column::CreatedAt, old.into())
            .filter(messages::Column::WaMessageId.eq(order[0].as_str()))
            .exec(&conn)
            .await
            .expect("backdate");
        inbound_messages::Entity::update_many()
            .col_expr(inbound_messages::Column::CreatedAt, old.into())
            .filter(inbound_messages::Column::WaMessageId.is_in(["3EB0IN1", "3EB0IN3"]))
            .exec(&conn)
            .await
            .expect("backdate");
        poll_votes::Entity::insert(poll_votes::ActiveModel {
            id: Set(Uuid::now_v7()),
            instance_id: Set(id),
            poll_message_id: Set("3EB0POLL".into()),
            voter_jid: Set(format!("{FRIEND}@s.whatsapp.net")),
            voter_phone_number: Set(Some(FRIEND.into())),
            voter_lid: Set(None),
            options: Set("[]".into()),
            voted_at: Set(old),
        })
        .exec(&conn)
        .await
        .expect("vote");
        let r = send(app.req(Method::POST, "/v1/admin/jobs/retention/run")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let (_, page) = get(&app, &format!("/v1/instances/{id}/messages?limit=200")).await;
        assert_eq!(ids(&page).len(), left, "{days:?}: {page}");
        let stored = messages::Entity::find().count(&conn).await.expect("count")
            + inbound_messages::Entity::find()
                .count(&conn)
                .await
                .expect("count");
        // The reaction row counts too, while kept.
        assert_eq!(
            stored as usize,
            left + usize::from(days.is_none()),
            "{days:?}"
        );
        let votes = poll_votes::Entity::find()
            .count(&conn)
            .await
            .expect("count");
        assert_eq!(votes, u64::from(days.is_none()), "{days:?}");
        conn.close().await.ok();
    }
}
