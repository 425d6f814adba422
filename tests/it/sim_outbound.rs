//! Outbound conversations end to end: the gateway process with the real
//! client sends, and the simulated contact's phone decrypts what it got,
//! so each test asserts the content the recipient really received.

use reqwest::Method;
use serde_json::json;
use wasim::{Received, Sim};

use crate::harness::{TestDb, send};
use crate::sim_e2e::{Gateway, contact_has, eventually_value, gateway};

/// What the phone of `phone` received as message `id`; fails past the
/// deadline.
pub(crate) async fn received(sim: &Sim, phone: &str, id: &str) -> Received {
    eventually_value(&format!("{phone} to receive {id}"), || async {
        sim.received(phone).into_iter().find(|r| r.id == id)
    })
    .await
}

/// A gateway with one instance paired as `sender` (its prekeys up), and
/// `friend` on WhatsApp. Returns the gateway, the instance id and its
/// webhook secret.
pub(crate) async fn paired(sim: &Sim, sender: &str, friend: &str) -> (Gateway, uuid::Uuid, String) {
    sim.register_number(friend).expect("directory");
    let gw = gateway(TestDb::new().await, sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair_ready(sim, id, &secret, sender).await;
    (gw, id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_decrypts_the_text_it_was_sent() {
    const SENDER: &str = "6281234569001";
    const FRIEND: &str = "6281234569002";
    let sim = Sim::start().await.expect("simulator");
    let (gw, _id, _secret) = paired(&sim, SENDER, FRIEND).await;

    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "halo, apa kabar?" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    contact_has(&sim, &mid).await;
    let got = received(&sim, FRIEND, &mid).await;
    assert_eq!(got.from, SENDER);
    assert_eq!(
        got.message.conversation.as_deref(),
        Some("halo, apa kabar?"),
        "{:?}",
        got.message
    );
    // A second message rides the session the first one opened.
    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "kedua" })),
    )
    .await;
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    let got = received(&sim, FRIEND, &mid).await;
    assert_eq!(got.message.conversation.as_deref(), Some("kedua"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_locations_polls_and_contacts_arrive_as_sent() {
    const SENDER: &str = "6281234569011";
    const FRIEND: &str = "6281234569012";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let post = |route: &str, body: serde_json::Value| {
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}/{route}"))
            .json(&body)
    };
    let sent_id = |r: &crate::harness::Reply| {
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["message_id"].as_str().expect("id").to_owned()
    };

    // A reaction to our own message names it as ours.
    let text = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "pesanan siap" })),
    )
    .await;
    let ours = sent_id(&text);
    received(&sim, FRIEND, &ours).await;
    let r = send(post(
        "reaction",
        json!({ "to": FRIEND, "message_id": ours, "emoji": "👍" }),
    ))
    .await;
    let mid = sent_id(&r);
    let got = received(&sim, FRIEND, &mid).await;
    let reaction = got
        .message
        .reaction_message
        .as_option()
        .expect("a reaction");
    assert_eq!(reaction.text.as_deref(), Some("👍"));
    let key = reaction.key.as_option().expect("the target's key");
    assert_eq!(key.id.as_deref(), Some(ours.as_str()));
    assert_eq!(key.from_me, Some(true));
    let event = gw.message_webhook(id, "message.sent", &secret, &mid).await;
    assert_eq!(event["data"]["kind"], "reaction", "{event}");

    // A reaction to the contact's message names it as theirs; an empty
    // emoji takes it back.
    let theirs = sim
        .send_text(FRIEND, SENDER, "terima kasih")
        .await
        .expect("inbound");
    gw.message_webhook(id, "message.received", &secret, &theirs)
        .await;
    for emoji in ["❤️", ""] {
        let r = send(post(
            "reaction",
            json!({ "to": FRIEND, "message_id": theirs, "emoji": emoji }),
        ))
        .await;
        let got = received(&sim, FRIEND, &sent_id(&r)).await;
        let reaction = got.message.reaction_message.as_option().expect("reaction");
        assert_eq!(reaction.text.as_deref().unwrap_or_default(), emoji);
        let key = reaction.key.as_option().expect("key");
        assert_eq!(key.id.as_deref(), Some(theirs.as_str()));
        assert_eq!(key.from_me, Some(false));
    }

    // A location, under /v1 and with an Idempotency-Key: the repeat sends
    // nothing more, and the contact got it under the id the key derives.
    let location = json!({
        "to": FRIEND, "latitude": -6.175392, "longitude": 106.827153,
        "name": "Monas", "address": "Gambir, Jakarta Pusat"
    });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = send(
            gw.req(
                Method::POST,
                &format!("/v1/send/by-number/{SENDER}/location"),
            )
            .header("Idempotency-Key", "loc-1")
            .json(&location),
        )
        .await;
        ids.push(sent_id(&r));
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(
        ids[0],
        wagate::messaging::idempotency::message_id(id, "loc-1")
    );
    let got = received(&sim, FRIEND, &ids[0]).await;
    let pin = got.message.location_message.as_option().expect("location");
    assert_eq!(pin.degrees_latitude, Some(-6.175392));
    assert_eq!(pin.degrees_longitude, Some(106.827153));
    assert_eq!(pin.name.as_deref(), Some("Monas"));
    assert_eq!(pin.address.as_deref(), Some("Gambir, Jakarta Pusat"));

    // Polls: single choice travels as v3, multiple choice as v1.
    let options = json!([{ "name": "Pagi" }, { "name": "Siang" }, { "name": "Malam" }]);
    let r = send(post(
        "poll",
        json!({ "to": FRIEND, "question": "Kapan dikirim?", "options": options }),
    ))
    .await;
    let got = received(&sim, FRIEND, &sent_id(&r)).await;
    let poll = got
        .message
        .poll_creation_message_v3
        .as_option()
        .expect("a single-choice poll");
    assert_eq!(poll.name.as_deref(), Some("Kapan dikirim?"));
    let names: Vec<_> = poll
        .options
        .iter()
        .map(|o| o.option_name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Pagi", "Siang", "Malam"]);
    assert_eq!(poll.selectable_options_count, Some(1));
    let r = send(post(
        "poll",
        json!({ "to": FRIEND, "question": "Warna?", "options": options, "selectable_count": 2 }),
    ))
    .await;
    let got = received(&sim, FRIEND, &sent_id(&r)).await;
    let poll = got
        .message
        .poll_creation_message
        .as_option()
        .expect("a multiple-choice poll");
    assert_eq!(poll.selectable_options_count, Some(2));

    // One contact card, built from a name and a number.
    let r = send(post(
        "contact",
        json!({ "to": FRIEND, "contacts": [
            { "display_name": "Budi Santoso", "phone_numbers": ["+62 812-3456-7000"] }
        ] }),
    ))
    .await;
    let got = received(&sim, FRIEND, &sent_id(&r)).await;
    let card = got.message.contact_message.as_option().expect("a contact");
    assert_eq!(card.display_name.as_deref(), Some("Budi Santoso"));
    let vcard = card.vcard.as_deref().unwrap_or_default();
    assert!(vcard.contains("FN:Budi Santoso"), "{vcard}");
    assert!(
        vcard.contains("waid=6281234567000:+6281234567000"),
        "{vcard}"
    );
    // Two cards travel as one array; a raw vCard is passed through.
    let raw = "BEGIN:VCARD\nVERSION:3.0\nFN:Ani\nTEL;type=CELL:+62 811 000\nEND:VCARD";
    let r = send(post(
        "contact",
        json!({ "to": FRIEND, "contacts": [
            { "vcard": raw },
            { "display_name": "Citra", "phone_numbers": ["6281234567001"] }
        ] }),
    ))
    .await;
    let got = received(&sim, FRIEND, &sent_id(&r)).await;
    let cards = got
        .message
        .contacts_array_message
        .as_option()
        .expect("contacts");
    assert_eq!(cards.contacts.len(), 2);
    assert_eq!(cards.contacts[0].vcard.as_deref(), Some(raw));
    assert_eq!(cards.contacts[0].display_name.as_deref(), Some("Ani"));
    assert_eq!(cards.contacts[1].display_name.as_deref(), Some("Citra"));
    let stored = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages/{}", sent_id(&r)),
    ))
    .await;
    assert_eq!(stored.body["kind"], "contact", "{:?}", stored.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_revokes_read_marks_and_presence_reach_the_contact() {
    use wasim::wa::message::protocol_message::Type;
    const SENDER: &str = "6281234569021";
    const FRIEND: &str = "6281234569022";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let base = format!("/v1/instances/{id}");
    let mut texts = Vec::new();
    for body in ["harga 10rb", "salah kirim"] {
        let r = send(
            gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
                .json(&json!({ "to": FRIEND, "text": body })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let mid = r.body["message_id"].as_str().expect("id").to_owned();
        received(&sim, FRIEND, &mid).await;
        texts.push(mid);
    }

    // The edit: a protocol message naming the original, with the new text.
    let r = send(
        gw.req(Method::PATCH, &format!("{base}/messages/{}", texts[0]))
            .json(&json!({ "text": "harga 12rb" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = eventually_value("the edit to arrive", || async {
        sim.received(FRIEND)
            .into_iter()
            .find(|r| r.edit.as_deref() == Some("1"))
    })
    .await;
    let edit = got.message.protocol_message.as_option().expect("protocol");
    assert_eq!(edit.r#type, Some(Type::MessageEdit));
    let key = edit.key.as_option().expect("key");
    assert_eq!(key.id.as_deref(), Some(texts[0].as_str()));
    let new = edit.edited_message.as_option().expect("edited message");
    assert_eq!(new.conversation.as_deref(), Some("harga 12rb"), "{new:?}");
    let event = gw
        .message_webhook(id, "message.edited", &secret, &texts[0])
        .await;
    assert_eq!(event["data"]["text"], "harga 12rb", "{event}");

    // The revoke: deleted for everyone.
    let r = send(gw.req(Method::DELETE, &format!("{base}/messages/{}", texts[1]))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = eventually_value("the revoke to arrive", || async {
        sim.received(FRIEND)
            .into_iter()
            .find(|r| r.edit.as_deref() == Some("7"))
    })
    .await;
    let revoke = got.message.protocol_message.as_option().expect("protocol");
    assert_eq!(revoke.r#type, Some(Type::Revoke));
    let key = revoke.key.as_option().expect("key");
    assert_eq!(key.id.as_deref(), Some(texts[1].as_str()));
    let event = gw
        .message_webhook(id, "message.deleted", &secret, &texts[1])
        .await;
    assert_eq!(event["data"]["for"], "everyone", "{event}");

    // Read marks for what the contact sent, as receipts to the contact.
    let mut inbound = Vec::new();
    for body in ["halo", "ada stok?"] {
        let mid = sim.send_text(FRIEND, SENDER, body).await.expect("inbound");
        gw.message_webhook(id, "message.received", &secret, &mid)
            .await;
        inbound.push(mid);
    }
    let r = send(
        gw.req(Method::POST, &format!("{base}/chats/+{FRIEND}/read"))
            .json(&json!({ "message_ids": inbound })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let receipt = eventually_value("a read receipt", || async {
        sim.stanzas(SENDER)
            .into_iter()
            .find(|s| s.tag == "receipt" && s.attr("type") == Some("read"))
    })
    .await;
    let mut ids: Vec<&str> = receipt.attr("id").into_iter().collect();
    ids.extend(
        receipt
            .children
            .iter()
            .filter(|(tag, _)| tag == "item")
            .filter_map(|(_, attrs)| attrs.get("id").map(String::as_str)),
    );
    assert_eq!(ids, inbound, "{receipt:?}");
    assert!(
        receipt
            .attr("to")
            .is_some_and(|to| to.starts_with(FRIEND) || to.ends_with("@lid")),
        "{receipt:?}"
    );

    // Chat states, then the instance's own presence.
    for (state, child, media) in [
        ("typing", "composing", None),
        ("recording", "composing", Some("audio")),
        ("paused", "paused", None),
    ] {
        let before = sim.stanzas(SENDER).len();
        let r = send(
            gw.req(Method::POST, &format!("{base}/chats/{FRIEND}/presence"))
                .json(&json!({ "state": state })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let stanza = eventually_value(&format!("chat state {state}"), || async {
            sim.stanzas(SENDER)
                .into_iter()
                .skip(before)
                .find(|s| s.tag == "chatstate")
        })
        .await;
        assert_eq!(stanza.children[0].0, child, "{stanza:?}");
        assert_eq!(
            stanza.children[0].1.get("media").map(String::as_str),
            media,
            "{stanza:?}"
        );
    }
    for (available, kind) in [(false, "unavailable"), (true, "available")] {
        let before = sim.stanzas(SENDER).len();
        let r = send(
            gw.req(Method::PUT, &format!("{base}/presence"))
                .json(&json!({ "available": available })),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        eventually_value(&format!("presence {kind}"), || async {
            sim.stanzas(SENDER)
                .into_iter()
                .skip(before)
                .find(|s| s.tag == "presence" && s.attr("type") == Some(kind))
        })
        .await;
    }
}
