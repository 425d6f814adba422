//! Sending by the sender's number, number checks and message tracking,
//! with the scripted engine standing in for WhatsApp.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::scripted::{Call, ScriptedEngine};
use wagate::engine::{Content, EngineEvent, Inbound, MediaKind, Party, ReceiptKind};

use crate::harness::{Reply, TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{events, new_instance, pair_and_connect, settle, types};

const SENDER: &str = "6281234567890";
const FRIEND: &str = "6281299990000";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// A gateway whose instance is online as SENDER, with FRIEND on WhatsApp.
async fn online(adjust: impl FnOnce(figment::Figment) -> figment::Figment) -> (TestApp, Uuid) {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| adjust(f.merge(("messaging.default_region", "ID"))));
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    (app, id)
}

async fn send_text(app: &TestApp, path: &str, body: Value, key: Option<&str>) -> Reply {
    let mut req = app.req(Method::POST, path).json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    send(req).await
}

fn sends(engine: &ScriptedEngine) -> usize {
    engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::SendText { .. } | Call::SendMedia { .. }))
        .count()
}

#[tokio::test]
async fn text_is_sent_tracked_and_reported() {
    let (app, id) = online(|f| f).await;
    for path in [
        format!("/send/by-number/{SENDER}"),
        "/v1/send/by-number/+62 812-3456-7890".to_owned(),
    ] {
        let r = send_text(
            &app,
            &path,
            json!({"to": "0812-9999-0000", "text": "halo"}),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["instance_id"], id.to_string());
        assert_eq!(r.body["to"], FRIEND);
        assert_eq!(r.body["to_jid"], format!("{FRIEND}@s.whatsapp.net"));
        assert_eq!(r.body["status"], "sent");
        let mid = r.body["message_id"].as_str().expect("id");
        let stored =
            send(app.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
        assert_eq!(stored.body["status"], "sent");
        assert_eq!(stored.body["kind"], "text");
    }
    assert!(app.engine.calls().contains(&Call::SendText {
        instance: id,
        to: format!("{FRIEND}@s.whatsapp.net"),
        text: "halo".into(),
        context: Default::default(),
    }));
    // The number was asked about once; the second send used the cache.
    let checks = app
        .engine
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::CheckNumbers(..)))
        .count();
    assert_eq!(checks, 1);
    let evs = events(&app, id).await;
    let sent: Vec<_> = evs.iter().filter(|(t, _)| t == "message.sent").collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].1["to"], FRIEND);

    let page = send(app.req(Method::GET, &format!("/v1/instances/{id}/messages?limit=1"))).await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
    // Newest first, paged by cursor (README: the old `after` paging stays
    // behind `?after=`).
    assert!(page.body["next_cursor"].is_string(), "{:?}", page.body);
}

#[tokio::test]
async fn sender_and_recipient_errors() {
    let (app, id) = online(|f| f).await;
    let text = |to: &str| json!({"to": to, "text": "x"});
    send_text(&app, "/send/by-number/6281200001111", text(FRIEND), None)
        .await
        .assert_problem(404, "sender_not_found");
    // Not a phone number's shape: the document's pattern refuses it.
    send_text(&app, "/send/by-number/12ab", text(FRIEND), None)
        .await
        .assert_problem(400, "invalid_parameter");
    // The shape of one, but no valid number: libphonenumber refuses it.
    let bad = send_text(&app, "/send/by-number/+1 000 000 0000", text(FRIEND), None).await;
    bad.assert_problem(422, "invalid_phone_number");
    assert!(
        bad.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("phoneNumber"))
    );
    send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        text("nope"),
        None,
    )
    .await
    .assert_problem(422, "invalid_body");
    let bad = send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        text("+1 000 000 0000"),
        None,
    )
    .await;
    bad.assert_problem(422, "invalid_phone_number");
    assert!(
        bad.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("to"))
    );
    send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        text("+6281277776666"),
        None,
    )
    .await
    .assert_problem(422, "number_not_on_whatsapp");
    assert_eq!(sends(&app.engine), 0, "nothing was sent");

    app.engine
        .emit(
            id,
            EngineEvent::Disconnected {
                reason: "gone".into(),
            },
        )
        .await;
    crate::pairing::instance(&app, id).await;
    eventually("disconnected", || async {
        let i = crate::pairing::instance(&app, id).await;
        (i["status"] == "disconnected").then_some(())
    })
    .await;
    send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        text(FRIEND),
        None,
    )
    .await
    .assert_problem(409, "sender_not_connected");
}

#[tokio::test]
async fn whatsapps_own_jid_is_used_and_reported() {
    let (app, id) = online(|f| f).await;
    app.engine
        .register_number_as("5511912345678", "551112345678@s.whatsapp.net");
    let r = send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        json!({"to": "+55 11 91234-5678", "text": "oi"}),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["to"], "5511912345678");
    assert_eq!(r.body["to_jid"], "551112345678@s.whatsapp.net");
    assert!(app.engine.calls().iter().any(|c| matches!(c,
        Call::SendText { instance, to, .. } if *instance == id && to == "551112345678@s.whatsapp.net")));
}

#[tokio::test]
async fn idempotency_key_replays_and_guards() {
    let (app, _) = online(|f| f).await;
    let path = format!("/send/by-number/{SENDER}");
    let body = json!({"to": FRIEND, "text": "once"});
    let first = send_text(&app, &path, body.clone(), Some("order-42")).await;
    let again = send_text(&app, &path, body, Some("order-42")).await;
    assert_eq!(first.status, 200);
    assert_eq!(again.status, 200);
    assert_eq!(first.body, again.body, "the first answer, verbatim");
    assert_eq!(sends(&app.engine), 1, "sent once");
    send_text(
        &app,
        &path,
        json!({"to": FRIEND, "text": "twice?"}),
        Some("order-42"),
    )
    .await
    .assert_problem(422, "idempotency_key_reused");
    let other = send_text(
        &app,
        &path,
        json!({"to": FRIEND, "text": "once"}),
        Some("order-43"),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(sends(&app.engine), 2);
}

#[tokio::test]
async fn receipts_move_a_message_forward_only() {
    let (app, id) = online(|f| f).await;
    let r = send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        json!({"to": FRIEND, "text": "hi"}),
        None,
    )
    .await;
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    let friend = Party {
        jid: "12345678901234@lid".into(),
        phone_number: Some(FRIEND.into()),
        lid: Some("12345678901234@lid".into()),
    };
    let receipt = |kind| EngineEvent::Receipt {
        message_ids: vec![mid.clone()],
        kind,
        from: friend.clone(),
    };
    app.engine
        .emit(
            id,
            EngineEvent::ServerAck {
                message_id: mid.clone(),
                error: None,
            },
        )
        .await;
    app.engine.emit(id, receipt(ReceiptKind::Delivered)).await;
    app.engine.emit(id, receipt(ReceiptKind::Read)).await;
    app.engine.emit(id, receipt(ReceiptKind::Delivered)).await;
    settle(&app, id).await;
    let stored = send(app.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
    assert_eq!(stored.body["status"], "read");
    let evs = events(&app, id).await;
    let message_events: Vec<&str> = types(&evs)
        .into_iter()
        .filter(|t| t.starts_with("message."))
        .collect();
    assert_eq!(
        message_events,
        ["message.sent", "message.delivered", "message.read"]
    );
    let read = &evs
        .iter()
        .find(|(t, _)| t == "message.read")
        .expect("read")
        .1;
    assert_eq!(read["message_id"], mid.as_str());
    assert_eq!(read["recipient"]["phone_number"], FRIEND);
    assert_eq!(read["recipient"]["lid"], "12345678901234@lid");
}

#[tokio::test]
async fn a_refused_send_is_recorded_as_failed() {
    let (app, id) = online(|f| f).await;
    app.engine.fail_sends(true);
    let r = send_text(
        &app,
        &format!("/send/by-number/{SENDER}"),
        json!({"to": FRIEND, "text": "x"}),
        None,
    )
    .await;
    r.assert_problem(502, "send_failed");
    let page = send(app.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages?status=failed"),
    ))
    .await;
    let items = page.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert!(
        items[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("scripted"))
    );
    assert_eq!(
        types(&events(&app, id).await).last(),
        Some(&"message.failed")
    );
}

fn file_form(to: &str, bytes: &[u8], name: &str, kind: Option<&str>) -> Form {
    let mut form = Form::new()
        .text("to", to.to_owned())
        .part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
        )
        .text("caption", "look");
    if let Some(kind) = kind {
        form = form.text("kind", kind.to_owned());
    }
    form
}

#[tokio::test]
async fn uploaded_media_is_sniffed_and_limited() {
    let (app, id) = online(|f| f.merge(("messaging.max_media_bytes", 1024))).await;
    let path = format!("/send/by-number/{SENDER}/media-file");
    let r = send(
        app.req(Method::POST, &path)
            .multipart(file_form(FRIEND, PNG, "pic.bin", None)),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(app.engine.calls().contains(&Call::SendMedia {
        instance: id,
        to: format!("{FRIEND}@s.whatsapp.net"),
        kind: MediaKind::Image,
        mime_type: "image/png".into(),
        size: PNG.len(),
        file_name: Some("pic.bin".into()),
        caption: Some("look".into()),
        voice: false,
        context: Default::default(),
    }));
    let stored = send(app.req(
        Method::GET,
        &format!(
            "/v1/instances/{id}/messages/{}",
            r.body["message_id"].as_str().expect("id")
        ),
    ))
    .await;
    assert_eq!(stored.body["kind"], "image");

    send(
        app.req(Method::POST, &path)
            .multipart(file_form(FRIEND, PNG, "x.mp4", Some("video"))),
    )
    .await
    .assert_problem(422, "media_type_mismatch");
    let doc = send(app.req(Method::POST, &path).multipart(file_form(
        FRIEND,
        PNG,
        "x.png",
        Some("document"),
    )))
    .await;
    assert_eq!(doc.status, 200, "anything may go as a document");
    send(
        app.req(Method::POST, &path)
            .multipart(file_form(FRIEND, &[7u8; 2000], "big", None)),
    )
    .await
    .assert_problem(413, "media_too_large");
    send(
        app.req(Method::POST, &path)
            .multipart(file_form(FRIEND, &[7u8; 200_000], "huge", None)),
    )
    .await
    .assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn number_checks() {
    let (app, id) = online(|f| f).await;
    let r = send(
        app.req(Method::POST, "/v1/numbers/check")
            .json(&json!({"numbers": ["+62 812-9999-0000", "081200000000"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results[0]["input"], "+62 812-9999-0000");
    assert_eq!(results[0]["phone_number"], FRIEND);
    assert_eq!(results[0]["registered"], true);
    assert_eq!(results[0]["jid"], format!("{FRIEND}@s.whatsapp.net"));
    assert_eq!(results[1]["registered"], false);
    assert!(results[1]["jid"].is_null());

    let named = send(
        app.req(Method::POST, "/v1/numbers/check")
            .json(&json!({"numbers": [FRIEND], "instance_id": id})),
    )
    .await;
    assert_eq!(named.status, 200);
    send(
        app.req(Method::POST, "/v1/numbers/check")
            .json(&json!({"numbers": [FRIEND], "instance_id": Uuid::now_v7()})),
    )
    .await
    .assert_problem(409, "no_instance_online");
    // An entry that is not a number's shape is refused by the document's rule.
    for numbers in [json!([""]), json!(["0"]), json!([FRIEND, " "])] {
        send(
            app.req(Method::POST, "/v1/numbers/check")
                .json(&json!({"numbers": numbers})),
        )
        .await
        .assert_problem(422, "invalid_body");
    }
}

#[tokio::test]
async fn inbound_messages_become_events() {
    let (app, id) = online(|f| f).await;
    app.engine
        .emit(
            id,
            EngineEvent::Message(Box::new(Inbound {
                from_me: false,
                chat_subject: None,
                message_id: "3EB0INBOUND".into(),
                from: Party {
                    jid: "12345678901234@lid".into(),
                    phone_number: Some(FRIEND.into()),
                    lid: Some("12345678901234@lid".into()),
                },
                chat: "12345678901234@lid".into(),
                timestamp: chrono::Utc::now(),
                content: Content::Text {
                    text: "apa kabar?".into(),
                    quoted: None,
                    mentions: Vec::new(),
                },
            })),
        )
        .await;
    settle(&app, id).await;
    let evs = events(&app, id).await;
    let (_, data) = evs
        .iter()
        .find(|(t, _)| t == "message.received")
        .expect("message.received");
    assert_eq!(data["text"], "apa kabar?");
    assert_eq!(data["kind"], "text");
    assert_eq!(data["sender"]["phone_number"], FRIEND);
    assert_eq!(data["from_pn"], FRIEND);
    assert_eq!(data["from_lid"], "12345678901234@lid");
    assert_eq!(data["message_id"], "3EB0INBOUND");
}
