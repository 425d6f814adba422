//! Issue 12's history end to end: the gateway process with the real client
//! against wasim; what a contact's phone sends changes the stored messages
//! and the routes that read them back.

use reqwest::Method;
use serde_json::{Value, json};
use wasim::Sim;
use wasim::{MessageField, wa};

use crate::harness::send;
use crate::sim_e2e::Gateway;
use crate::sim_outbound::{paired, received};

fn key(id: &str, remote: &str, from_me: bool) -> MessageField<wa::MessageKey> {
    MessageField::some(wa::MessageKey {
        remote_jid: Some(remote.to_owned()),
        from_me: Some(from_me),
        id: Some(id.to_owned()),
        ..Default::default()
    })
}

fn reaction(target: &str, remote: &str, from_me: bool, emoji: &str) -> wa::Message {
    wa::Message {
        reaction_message: MessageField::some(wa::message::ReactionMessage {
            key: key(target, remote, from_me),
            text: Some(emoji.to_owned()),
            sender_timestamp_ms: Some(chrono::Utc::now().timestamp_millis()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn protocol(
    kind: wa::message::protocol_message::Type,
    target: &str,
    remote: &str,
    edited: Option<&str>,
) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(kind),
            key: key(target, remote, true),
            edited_message: match edited {
                Some(text) => MessageField::some(wa::Message {
                    conversation: Some(text.to_owned()),
                    ..Default::default()
                }),
                None => MessageField::none(),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn get_message(gw: &Gateway, id: uuid::Uuid, message_id: &str) -> (u16, Value) {
    let r = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages/{message_id}"),
    ))
    .await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_edits_deletions_and_reactions_change_the_stored_messages() {
    use wa::message::protocol_message::Type;
    const SENDER: &str = "6281234569101";
    const FRIEND: &str = "6281234569102";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let me = format!("{SENDER}@s.whatsapp.net");
    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "harganya 10rb" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ours = r.body["message_id"].as_str().expect("id").to_owned();
    received(&sim, FRIEND, &ours).await;
    let sent = gw.message_webhook(id, "message.sent", &secret, &ours).await;
    assert_eq!(sent["data"]["origin"], "api", "{sent}");
    let lid = sent["data"]["recipient"]["lid"]
        .as_str()
        .expect("the recipient's LID")
        .to_owned();
    assert!(lid.ends_with("@lid"), "{sent}");
    lookups_answer_the_other_half(&gw, id, FRIEND, &lid).await;
    let mut theirs = Vec::new();
    for text in ["mau 2", "salah kirim"] {
        let mid = sim.send_text(FRIEND, SENDER, text).await.expect("inbound");
        gw.message_webhook(id, "message.received", &secret, &mid)
            .await;
        theirs.push(mid);
    }

    let edit = protocol(Type::MessageEdit, &theirs[0], &me, Some("mau 3"));
    sim.send_message(FRIEND, SENDER, &edit).await.expect("edit");
    gw.message_webhook(id, "message.edited", &secret, &theirs[0])
        .await;
    let revoke = protocol(Type::Revoke, &theirs[1], &me, None);
    sim.send_message(FRIEND, SENDER, &revoke)
        .await
        .expect("revoke");
    gw.message_webhook(id, "message.deleted", &secret, &theirs[1])
        .await;
    let on_ours = sim
        .send_message(FRIEND, SENDER, &reaction(&ours, &me, false, "👍"))
        .await
        .expect("reaction");
    gw.message_webhook(id, "message.reaction", &secret, &ours)
        .await;
    // Reacting twice to one's own message keeps only the second emoji.
    let mut last = String::new();
    for emoji in ["❤️", "😂"] {
        let on_theirs = reaction(&theirs[0], &me, true, emoji);
        last = sim
            .send_message(FRIEND, SENDER, &on_theirs)
            .await
            .expect("reaction");
    }
    gw.webhook_where(id, "message.reaction", &secret, |body| {
        body["data"]["reaction_id"] == last.as_str()
    })
    .await;

    let (status, edited) = get_message(&gw, id, &theirs[0]).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["direction"], "in", "{edited}");
    assert_eq!(edited["text"], "mau 3", "{edited}");
    assert!(edited["edited_at"].is_string(), "{edited}");
    assert_eq!(edited["sender"]["phone_number"], FRIEND, "{edited}");
    assert_eq!(edited["reactions"].as_array().map(Vec::len), Some(1));
    assert_eq!(edited["reactions"][0]["emoji"], "😂", "{edited}");
    assert_eq!(
        edited["reactions"][0]["from"]["phone_number"], FRIEND,
        "{edited}"
    );

    let (status, deleted) = get_message(&gw, id, &theirs[1]).await;
    assert_eq!(status, 200, "{deleted}");
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    assert!(deleted["edited_at"].is_null(), "{deleted}");

    let (status, sent) = get_message(&gw, id, &ours).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["direction"], "out", "{sent}");
    assert_eq!(sent["origin"], "api", "{sent}");
    assert_eq!(sent["text"], "harganya 10rb", "{sent}");
    assert_eq!(sent["reactions"][0]["emoji"], "👍", "{sent}");

    // The history and the chat list: one chat, both directions.
    let r = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages?chat={FRIEND}"),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let listed: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(
        listed,
        [theirs[1].as_str(), &theirs[0], &ours],
        "{:?}",
        r.body
    );
    let r = send(gw.req(Method::GET, &format!("/v1/instances/{id}/chats"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["items"][0]["unread_count"], 1, "{:?}", r.body);

    // A reaction is not a message of its own.
    let (status, body) = get_message(&gw, id, &on_ours).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "message_not_found");
}

/// `GET …/contacts/lookup` through the real client: by number from the
/// directory (the send's number check stored the mapping), by LID from the
/// store, and an unknown number is `contact_unknown`.
async fn lookups_answer_the_other_half(gw: &Gateway, id: uuid::Uuid, number: &str, lid: &str) {
    let lookup = format!("/v1/instances/{id}/contacts/lookup");
    let r = send(gw.req(Method::GET, &format!("{lookup}?phone={number}"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["lid"], lid, "{:?}", r.body);
    let r = send(gw.req(Method::GET, &format!("{lookup}?lid={lid}"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["phone_number"], number, "{:?}", r.body);
    let r = send(gw.req(Method::GET, &format!("{lookup}?phone=6281200000009"))).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.body["code"], "contact_unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_owner_sends_from_the_phone_are_sent_messages_of_origin_phone() {
    const SENDER: &str = "6281234569111";
    const FRIEND: &str = "6281234569112";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let text = wa::Message {
        conversation: Some("sampai jumpa besok".into()),
        ..Default::default()
    };
    let text_id = sim
        .phone_sends_elsewhere(SENDER, FRIEND, text)
        .await
        .expect("text");
    let sent = gw
        .message_webhook(id, "message.sent", &secret, &text_id)
        .await;
    let data = &sent["data"];
    assert_eq!(data["origin"], "phone", "{sent}");
    assert_eq!(data["kind"], "text", "{sent}");
    assert_eq!(data["text"], "sampai jumpa besok", "{sent}");
    assert_eq!(data["status"], "sent", "{sent}");
    assert_eq!(data["recipient"]["phone_number"], FRIEND, "{sent}");
    assert_eq!(data["chat"], format!("{FRIEND}@s.whatsapp.net"), "{sent}");

    let image = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            mimetype: Some("image/jpeg".into()),
            caption: Some("katalog baru".into()),
            file_length: Some(1234),
            file_sha256: Some(vec![7; 32]),
            file_enc_sha256: Some(vec![8; 32]),
            media_key: Some(vec![9; 32]),
            direct_path: Some("/v/t62.sim-24/from-the-phone".into()),
            width: Some(64),
            height: Some(48),
            ..Default::default()
        }),
        ..Default::default()
    };
    let image_id = sim
        .phone_sends_elsewhere(SENDER, FRIEND, image)
        .await
        .expect("image");
    let sent = gw
        .message_webhook(id, "message.sent", &secret, &image_id)
        .await;
    let data = &sent["data"];
    assert_eq!(data["origin"], "phone", "{sent}");
    assert_eq!(data["kind"], "image", "{sent}");
    assert_eq!(data["text"], "katalog baru", "{sent}");
    assert_eq!(data["media"]["mime_type"], "image/jpeg", "{sent}");
    assert_eq!(data["media"]["width"], 64, "{sent}");

    // Their receipts move them as they move API sends.
    sim.deliver(&text_id).expect("delivered");
    let delivered = gw
        .message_webhook(id, "message.delivered", &secret, &text_id)
        .await;
    assert_eq!(delivered["data"]["origin"], "phone", "{delivered}");

    let r = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages?direction=out"),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let items = r.body["items"].as_array().expect("items");
    let listed: Vec<&str> = items
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(listed, [image_id.as_str(), &text_id], "{:?}", r.body);
    assert!(items.iter().all(|m| m["origin"] == "phone"), "{:?}", r.body);
    assert_eq!(items[1]["status"], "delivered", "{:?}", r.body);
    assert_eq!(items[0]["text"], "katalog baru", "{:?}", r.body);
}

/// What the owner changes on the phone (device-sent reactions, edits and
/// revokes) changes its target, a message sent from the phone or through
/// the API, or one received, and is reported like a contact's change, with
/// `origin: "phone"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_edits_and_deletions_made_on_the_phone_change_their_targets() {
    use wa::message::protocol_message::Type;
    const SENDER: &str = "6281234569121";
    const FRIEND: &str = "6281234569122";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let friend = format!("{FRIEND}@s.whatsapp.net");
    let typed = sim
        .phone_sends_elsewhere(
            SENDER,
            FRIEND,
            wa::Message {
                conversation: Some("jam 3 ya".into()),
                ..Default::default()
            },
        )
        .await
        .expect("typed on the phone");
    gw.message_webhook(id, "message.sent", &secret, &typed)
        .await;
    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "harganya 10rb" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ours = r.body["message_id"].as_str().expect("id").to_owned();
    received(&sim, FRIEND, &ours).await;
    let theirs = sim.send_text(FRIEND, SENDER, "oke").await.expect("inbound");
    gw.message_webhook(id, "message.received", &secret, &theirs)
        .await;

    let edit = protocol(Type::MessageEdit, &typed, &friend, Some("jam 4 ya"));
    sim.phone_sends_elsewhere(SENDER, FRIEND, edit)
        .await
        .expect("edit");
    let edited = gw
        .message_webhook(id, "message.edited", &secret, &typed)
        .await;
    assert_eq!(edited["data"]["origin"], "phone", "{edited}");
    assert_eq!(edited["data"]["from_me"], true, "{edited}");
    assert_eq!(edited["data"]["text"], "jam 4 ya", "{edited}");
    assert_eq!(edited["data"]["sender"]["phone_number"], SENDER, "{edited}");

    let revoke = protocol(Type::Revoke, &ours, &friend, None);
    sim.phone_sends_elsewhere(SENDER, FRIEND, revoke)
        .await
        .expect("revoke");
    let deleted = gw
        .message_webhook(id, "message.deleted", &secret, &ours)
        .await;
    assert_eq!(deleted["data"]["origin"], "phone", "{deleted}");
    assert_eq!(deleted["data"]["from_me"], true, "{deleted}");
    assert_eq!(deleted["data"]["for"], "everyone", "{deleted}");

    let on_theirs = sim
        .phone_sends_elsewhere(SENDER, FRIEND, reaction(&theirs, &friend, false, "🙏"))
        .await
        .expect("reaction");
    let reacted = gw
        .message_webhook(id, "message.reaction", &secret, &theirs)
        .await;
    assert_eq!(reacted["data"]["origin"], "phone", "{reacted}");
    assert_eq!(reacted["data"]["from_me"], true, "{reacted}");
    assert_eq!(reacted["data"]["reaction_id"], on_theirs.as_str());
    assert_eq!(reacted["data"]["emoji"], "🙏", "{reacted}");

    let (status, message) = get_message(&gw, id, &typed).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["direction"], "out", "{message}");
    assert_eq!(message["origin"], "phone", "{message}");
    assert_eq!(message["text"], "jam 4 ya", "{message}");
    assert!(message["edited_at"].is_string(), "{message}");
    assert!(message["deleted_at"].is_null(), "{message}");

    let (status, message) = get_message(&gw, id, &ours).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["origin"], "api", "{message}");
    assert!(message["deleted_at"].is_string(), "{message}");

    let (status, message) = get_message(&gw, id, &theirs).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["reactions"].as_array().map(Vec::len), Some(1));
    assert_eq!(message["reactions"][0]["emoji"], "🙏", "{message}");
    assert_eq!(
        message["reactions"][0]["from"]["phone_number"], SENDER,
        "{message}"
    );

    // The changes are not messages of their own, in either direction.
    let (status, body) = get_message(&gw, id, &on_theirs).await;
    assert_eq!(status, 404, "{body}");
    let r = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages?chat={FRIEND}"),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let listed: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["message_id"].as_str())
        .collect();
    assert_eq!(listed, [theirs.as_str(), &ours, &typed], "{:?}", r.body);
}
