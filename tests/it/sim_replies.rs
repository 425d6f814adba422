//! Replies that quote, mentions, poll votes, calls and read-all, end to end:
//! the gateway process with the real client against wasim, the contact's
//! phone asserting what it really received and sending what a phone sends.

use reqwest::Method;
use serde_json::json;
use wasim::Sim;

use crate::harness::send;
use crate::sim_e2e::eventually_value;
use crate::sim_outbound::{paired, received};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_quote_the_original_and_mention_people() {
    const SENDER: &str = "6281234569031";
    const FRIEND: &str = "6281234569032";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let theirs = sim
        .send_text(FRIEND, SENDER, "ada stok kopi?")
        .await
        .expect("inbound");
    gw.message_webhook(id, "message.received", &secret, &theirs)
        .await;
    let text = |body: serde_json::Value| {
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&body)
    };

    // A reply to the contact's message, mentioning them.
    let r = send(text(json!({
        "to": FRIEND, "text": "ada, kak", "reply_to": theirs, "mentions": [format!("+{FRIEND}")]
    })))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let reply = r.body["message_id"].as_str().expect("id").to_owned();
    let got = received(&sim, FRIEND, &reply).await;
    let ext = got
        .message
        .extended_text_message
        .as_option()
        .expect("an extended text");
    assert_eq!(
        ext.text.as_deref(),
        Some(format!("ada, kak @{FRIEND}").as_str())
    );
    let ctx = ext.context_info.as_option().expect("context");
    assert_eq!(ctx.stanza_id.as_deref(), Some(theirs.as_str()));
    assert_eq!(
        ctx.participant.as_deref(),
        Some(format!("{FRIEND}@s.whatsapp.net").as_str())
    );
    let quoted = ctx.quoted_message.as_option().expect("the quoted message");
    assert_eq!(quoted.conversation.as_deref(), Some("ada stok kopi?"));
    assert_eq!(ctx.mentioned_jid, [format!("{FRIEND}@s.whatsapp.net")]);

    // A location replying to our own reply: the quote names the instance.
    let r = send(
        gw.req(
            Method::POST,
            &format!("/v1/send/by-number/{SENDER}/location"),
        )
        .json(&json!({
            "to": FRIEND, "latitude": -6.2, "longitude": 106.8, "reply_to": reply
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = received(&sim, FRIEND, r.body["message_id"].as_str().expect("id")).await;
    let pin = got.message.location_message.as_option().expect("location");
    let ctx = pin.context_info.as_option().expect("context");
    assert_eq!(ctx.stanza_id.as_deref(), Some(reply.as_str()));
    assert_eq!(
        ctx.participant.as_deref(),
        Some(format!("{SENDER}@s.whatsapp.net").as_str())
    );
    let quoted = ctx.quoted_message.as_option().expect("quoted");
    let quoted_text = quoted
        .extended_text_message
        .as_option()
        .and_then(|t| t.text.clone());
    let quoted_text = quoted.conversation.clone().or(quoted_text);
    assert_eq!(quoted_text, Some(format!("ada, kak @{FRIEND}")));

    // An id this instance never saw, and a mention of a number not on
    // WhatsApp, are refused before anything is sent.
    let before = sim.received(FRIEND).len();
    let r = send(text(
        json!({ "to": FRIEND, "text": "x", "reply_to": "3EB0NOPE" }),
    ))
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["code"], "reply_target_unknown");
    let r = send(text(
        json!({ "to": FRIEND, "text": "x", "mentions": ["6281299999999"] }),
    ))
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["code"], "number_not_on_whatsapp");
    let r = send(text(
        json!({ "to": FRIEND, "text": "x", "mentions": ["abc"] }),
    ))
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["code"], "invalid_body");
    assert_eq!(sim.received(FRIEND).len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_comes_back_with_the_tally() {
    const SENDER: &str = "6281234569041";
    const FRIEND: &str = "6281234569042";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}/poll"))
            .json(&json!({
                "to": FRIEND, "question": "Kapan?", "selectable_count": 2,
                "options": [{ "name": "Pagi" }, { "name": "Siang" }, { "name": "Malam" }]
            })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let poll_id = r.body["message_id"].as_str().expect("id").to_owned();
    let got = received(&sim, FRIEND, &poll_id).await;
    let poll_secret = got
        .message
        .message_context_info
        .as_option()
        .and_then(|c| c.message_secret.clone())
        .expect("the poll's secret");
    assert_eq!(poll_secret.len(), 32);

    for (picked, tally) in [
        (vec!["Pagi", "Malam"], [1, 0, 1]),
        // A second vote replaces the first.
        (vec!["Siang"], [0, 1, 0]),
    ] {
        let vote = sim
            .vote(FRIEND, SENDER, &poll_id, &poll_secret, &picked)
            .await
            .expect("vote");
        let event = gw
            .webhook_where(id, "message.poll_vote", &secret, |b| {
                b["data"]["vote_id"] == vote.as_str()
            })
            .await;
        let data = &event["data"];
        assert_eq!(data["message_id"], poll_id.as_str(), "{event}");
        assert_eq!(data["selected_options"], json!(picked), "{event}");
        assert_eq!(data["voter"]["phone_number"], FRIEND, "{event}");
        let counts: Vec<i64> = data["tally"]
            .as_array()
            .expect("tally")
            .iter()
            .map(|o| o["votes"].as_i64().unwrap_or(-1))
            .collect();
        assert_eq!(counts, tally, "{event}");
        assert_eq!(data["tally"][0]["name"], "Pagi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_reported_and_rejected_with_a_reply() {
    const SENDER: &str = "6281234569051";
    const FRIEND: &str = "6281234569052";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;

    // Settings off: the call is only reported.
    let first = sim.offer_call(FRIEND, SENDER, true).expect("call");
    let event = gw
        .webhook_where(id, "call.received", &secret, |b| {
            b["data"]["call_id"] == first.as_str()
        })
        .await;
    assert_eq!(event["data"]["media"], "video", "{event}");
    assert_eq!(event["data"]["caller"]["phone_number"], FRIEND, "{event}");
    assert_eq!(event["data"]["rejecting"], false, "{event}");

    let r = send(gw.req(Method::PATCH, &format!("/v1/instances/{id}")).json(
        &json!({ "reject_calls": true, "call_reply": "Maaf, tidak bisa menerima telepon." }),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["reject_calls"], true);
    assert_eq!(r.body["auto_read"], false);

    let call = sim.offer_call(FRIEND, SENDER, false).expect("call");
    let event = gw
        .webhook_where(id, "call.rejected", &secret, |b| {
            b["data"]["call_id"] == call.as_str()
        })
        .await;
    assert_eq!(event["data"]["media"], "voice", "{event}");
    let reply = event["data"]["reply_message_id"]
        .as_str()
        .expect("the reply's id")
        .to_owned();
    let reject = eventually_value("the rejection", || async {
        sim.stanzas(SENDER).into_iter().find(|s| {
            s.tag == "call"
                && s.children
                    .iter()
                    .any(|(tag, attrs)| tag == "reject" && attrs.get("call-id") == Some(&call))
        })
    })
    .await;
    assert!(
        reject.attr("to").is_some_and(|to| to.starts_with(FRIEND)),
        "{reject:?}"
    );
    let got = received(&sim, FRIEND, &reply).await;
    assert_eq!(
        got.message.conversation.as_deref(),
        Some("Maaf, tidak bisa menerima telepon.")
    );
    gw.message_webhook(id, "message.sent", &secret, &reply)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_and_auto_read_send_receipts_for_the_unread() {
    const SENDER: &str = "6281234569061";
    const FRIEND: &str = "6281234569062";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;
    let read_ids = |sim: &Sim| -> Vec<String> {
        sim.stanzas(SENDER)
            .into_iter()
            .filter(|s| s.tag == "receipt" && s.attr("type") == Some("read"))
            .flat_map(|r| {
                let mut ids: Vec<String> = r.attr("id").map(str::to_owned).into_iter().collect();
                ids.extend(
                    r.children
                        .iter()
                        .filter(|(tag, _)| tag == "item")
                        .filter_map(|(_, a)| a.get("id").cloned()),
                );
                ids
            })
            .collect()
    };
    let mut inbound = Vec::new();
    for body in ["satu", "dua"] {
        let mid = sim.send_text(FRIEND, SENDER, body).await.expect("inbound");
        gw.message_webhook(id, "message.received", &secret, &mid)
            .await;
        inbound.push(mid);
    }
    let path = format!("/v1/instances/{id}/chats/{FRIEND}/read");
    let r = send(gw.req(Method::POST, &path).json(&json!({ "all": true }))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["message_ids"], json!(inbound));
    eventually_value("read receipts for both", || async {
        let read = read_ids(&sim);
        inbound.iter().all(|m| read.contains(m)).then_some(())
    })
    .await;
    // Nothing is unread any more: no receipt is sent.
    let r = send(gw.req(Method::POST, &path).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["message_ids"], json!([]));
    let r = send(
        gw.req(Method::POST, &path)
            .json(&json!({ "all": true, "message_ids": [inbound[0]] })),
    )
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.body["code"], "invalid_read_request");

    // auto_read: the next message is read once its webhook took it.
    let r = send(
        gw.req(Method::PATCH, &format!("/v1/instances/{id}"))
            .json(&json!({ "auto_read": true })),
    )
    .await;
    assert_eq!(r.body["auto_read"], true, "{:?}", r.body);
    let mid = sim
        .send_text(FRIEND, SENDER, "tiga")
        .await
        .expect("inbound");
    gw.message_webhook(id, "message.received", &secret, &mid)
        .await;
    eventually_value("an automatic read receipt", || async {
        read_ids(&sim).contains(&mid).then_some(())
    })
    .await;
}
