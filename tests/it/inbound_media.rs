//! Inbound media with the scripted engine: rows with their messages, eager
//! and lazy downloads, the media route (ranges, scopes, problems), the
//! `media` object and its follow-up events, limits and retention.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wagate::engine::scripted::{ScriptedEngine, media_bytes, received_media};
use wagate::engine::{Content, EngineEvent, Inbound, Party, ReceivedMediaKind};

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::pairing::{events, new_instance, pair_and_connect};

const SENDER: &str = "6281234567890";
const FRIEND: &str = "6281299990000";

async fn online(tweak: impl FnOnce(figment::Figment) -> figment::Figment) -> (TestApp, Uuid) {
    let db = TestDb::new().await;
    // A folder of the test's own, also on PostgreSQL.
    let dir = tempfile::tempdir().expect("dir").keep();
    let settings = settings_with(&db, |f| {
        tweak(f.merge(("media.dir", dir.display().to_string())))
    });
    let app = TestApp::spawn_scripted(db, settings, ScriptedEngine::new()).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    (app, id)
}

async fn receive(app: &TestApp, id: Uuid, message_id: &str, content: Content) {
    let inbound = Inbound {
        from_me: false,
        chat_subject: None,
        message_id: message_id.into(),
        from: Party {
            jid: format!("{FRIEND}@s.whatsapp.net"),
            phone_number: Some(FRIEND.into()),
            lid: None,
        },
        chat: format!("{FRIEND}@s.whatsapp.net"),
        timestamp: chrono::Utc::now(),
        content,
    };
    assert!(
        app.engine
            .emit(id, EngineEvent::Message(Box::new(inbound)))
            .await
    );
}

async fn event(app: &TestApp, id: Uuid, kind: &str, message_id: &str) -> Value {
    eventually(&format!("{kind} of {message_id}"), || async {
        events(app, id)
            .await
            .into_iter()
            .find(|(t, d)| t == kind && d["message_id"] == message_id)
            .map(|(_, d)| d)
    })
    .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn path(id: Uuid, message_id: &str) -> String {
    format!("/v1/instances/{id}/messages/{message_id}/media")
}

#[tokio::test]
async fn eager_downloads_are_served_whole_and_in_ranges() {
    let (app, id) = online(|f| f).await;
    let mut media = received_media(
        ReceivedMediaKind::Document,
        "/v/doc-1",
        200_000,
        "application/pdf",
    );
    media.file_name = Some("../Laporan \"Q3\".pdf".into());
    media.caption = Some("the report".into());
    receive(&app, id, "3EB0DOC1", Content::Media(media.clone())).await;

    let received = event(&app, id, "message.received", "3EB0DOC1").await;
    let object = &received["media"];
    assert_eq!(object["url"], path(id, "3EB0DOC1"));
    assert_eq!(object["status"], "pending");
    assert!(object["error"].is_null());
    assert_eq!(object["size"], 200_000);
    assert_eq!(object["mime_type"], "application/pdf");
    assert_eq!(object["caption"], "the report");
    assert_eq!(object["sha256"], media.sha256.clone().expect("sha"));
    assert!(object.get("media_key").is_none(), "{object}");

    let ready = event(&app, id, "message.media_ready", "3EB0DOC1").await;
    assert_eq!(ready["media"]["status"], "ready");
    assert_eq!(ready["media"]["url"], path(id, "3EB0DOC1"));

    let expected = media_bytes("/v/doc-1", 200_000);
    let whole = app
        .req(Method::GET, &path(id, "3EB0DOC1"))
        .send()
        .await
        .expect("get");
    assert_eq!(whole.status(), 200);
    let h = whole.headers().clone();
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], "200000");
    assert_eq!(h["accept-ranges"], "bytes");
    let disposition = h["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.starts_with("attachment; filename=\"Laporan _Q3_.pdf\""),
        "{disposition}"
    );
    let body = whole.bytes().await.expect("body");
    assert_eq!(body.as_ref(), expected.as_slice());
    assert_eq!(Some(hex(&Sha256::digest(&body))), media.sha256);

    let part = app
        .req(Method::GET, &path(id, "3EB0DOC1"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("get");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/200000");
    assert_eq!(
        part.bytes().await.expect("body").as_ref(),
        &expected[100..200]
    );

    let tail = app
        .req(Method::GET, &path(id, "3EB0DOC1"))
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("get");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("body").as_ref(),
        &expected[199_990..]
    );

    let past = send(
        app.req(Method::GET, &path(id, "3EB0DOC1"))
            .header("Range", "bytes=200000-"),
    )
    .await;
    past.assert_problem(416, "range_not_satisfiable");
    assert_eq!(past.headers["content-range"], "bytes */200000");

    // Not media, and unknown.
    receive(
        &app,
        id,
        "3EB0TEXT",
        Content::Text {
            text: "hi".into(),
            quoted: None,
            mentions: vec![],
        },
    )
    .await;
    event(&app, id, "message.received", "3EB0TEXT").await;
    for unknown in ["3EB0TEXT", "NOPE"] {
        send(app.req(Method::GET, &path(id, unknown)))
            .await
            .assert_problem(404, "message_not_found");
    }
    send(app.req(Method::GET, &path(Uuid::now_v7(), "3EB0DOC1")))
        .await
        .assert_problem(404, "instance_not_found");
}

#[tokio::test]
async fn a_key_needs_read_on_the_instance() {
    let (app, id) = online(|f| f).await;
    let other = new_instance(&app).await;
    receive(
        &app,
        id,
        "3EB0IMG1",
        Content::Media(received_media(
            ReceivedMediaKind::Image,
            "/v/img-1",
            1000,
            "image/jpeg",
        )),
    )
    .await;
    event(&app, id, "message.media_ready", "3EB0IMG1").await;
    let key = |instances: Vec<Uuid>, scopes: Vec<&'static str>| {
        let app = &app;
        async move {
            let made = send(
                app.req(Method::POST, "/v1/keys")
                    .json(&json!({ "instances": instances, "scopes": scopes, "name": "media" })),
            )
            .await;
            assert_eq!(made.status, 201, "{:?}", made.body);
            made.body["key"].as_str().expect("key").to_owned()
        }
    };
    let get = |key: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url(&path(id, "3EB0IMG1")))
                .bearer_auth(key)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(key(vec![id], vec!["read"]).await).await, 200);
    assert_eq!(get(key(vec![id], vec!["send"]).await).await, 403);
    let elsewhere = get(key(vec![other], vec!["read"]).await).await;
    assert!(elsewhere == 403 || elsewhere == 404, "{elsewhere}");
}

#[tokio::test]
async fn failures_have_stable_codes() {
    let (app, id) = online(|f| f.merge(("media.max_inbound_bytes", 5000))).await;
    receive(
        &app,
        id,
        "3EB0BIG",
        Content::Media(received_media(
            ReceivedMediaKind::Video,
            "/v/big",
            5001,
            "video/mp4",
        )),
    )
    .await;
    let received = event(&app, id, "message.received", "3EB0BIG").await;
    assert_eq!(received["media"]["status"], "failed");
    assert_eq!(received["media"]["error"], "media_too_large");
    let r = send(app.req(Method::GET, &path(id, "3EB0BIG"))).await;
    r.assert_problem(409, "media_failed");
    assert!(
        r.body["detail"]
            .as_str()
            .expect("detail")
            .contains("media_too_large")
    );

    receive(
        &app,
        id,
        "3EB0GONE",
        Content::Media(received_media(
            ReceivedMediaKind::Audio,
            "/expired/1",
            100,
            "audio/ogg",
        )),
    )
    .await;
    let failed = event(&app, id, "message.media_failed", "3EB0GONE").await;
    assert_eq!(failed["media"]["status"], "failed");
    assert_eq!(failed["media"]["error"], "media_expired");

    let mut no_ref = received_media(ReceivedMediaKind::Sticker, "/v/s", 10, "image/webp");
    no_ref.reference = None;
    receive(&app, id, "3EB0NOREF", Content::Media(no_ref)).await;
    let received = event(&app, id, "message.received", "3EB0NOREF").await;
    assert_eq!(received["media"]["error"], "media_reference_missing");
}

#[tokio::test]
async fn lazy_downloads_on_the_first_request_then_keeps_it() {
    let (app, id) = online(|f| f.merge(("media.download", "lazy"))).await;
    let media = received_media(
        ReceivedMediaKind::Voice,
        "/v/ptt",
        4096,
        "audio/ogg; codecs=opus",
    );
    receive(&app, id, "3EB0PTT", Content::Media(media.clone())).await;
    let received = event(&app, id, "message.received", "3EB0PTT").await;
    assert_eq!(received["media"]["status"], "pending");
    assert_eq!(received["kind"], "voice");
    assert_eq!(app.engine.downloads(), 0);
    for _ in 0..2 {
        let r = app
            .req(Method::GET, &path(id, "3EB0PTT"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "audio/ogg; codecs=opus");
        let body = r.bytes().await.expect("body");
        assert_eq!(Some(hex(&Sha256::digest(&body))), media.sha256);
    }
    assert_eq!(app.engine.downloads(), 1, "kept after the first request");
    event(&app, id, "message.media_ready", "3EB0PTT").await;
}

#[tokio::test]
async fn pending_media_answers_409_until_ready() {
    let (app, id) = online(|f| f).await;
    app.engine
        .download_delay(std::time::Duration::from_millis(600));
    receive(
        &app,
        id,
        "3EB0SLOW",
        Content::Media(received_media(
            ReceivedMediaKind::Image,
            "/v/slow",
            10,
            "image/png",
        )),
    )
    .await;
    event(&app, id, "message.received", "3EB0SLOW").await;
    let r = send(app.req(Method::GET, &path(id, "3EB0SLOW"))).await;
    r.assert_problem(409, "media_pending");
    assert!(r.headers.get("retry-after").is_some());
    event(&app, id, "message.media_ready", "3EB0SLOW").await;
    let r = app
        .req(Method::GET, &path(id, "3EB0SLOW"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn retention_deletes_rows_and_files() {
    let (app, id) = online(|f| f.merge(("media.retention_days", 1))).await;
    receive(
        &app,
        id,
        "3EB0OLD",
        Content::Media(received_media(
            ReceivedMediaKind::Image,
            "/v/old",
            64,
            "image/png",
        )),
    )
    .await;
    event(&app, id, "message.media_ready", "3EB0OLD").await;
    let db = app.db.connect().await;
    use sea_orm::EntityTrait;
    let row = entity::inbound_media::Entity::find()
        .one(&db)
        .await
        .expect("row")
        .expect("one");
    assert!(
        row.reference.is_none(),
        "the media key is dropped once stored"
    );
    let old = chrono::Utc::now() - chrono::Duration::days(2);
    let mut active: entity::inbound_media::ActiveModel = row.into();
    active.created_at = sea_orm::ActiveValue::Set(old);
    entity::inbound_media::Entity::update(active)
        .exec(&db)
        .await
        .expect("age");
    let run = send(app.req(Method::POST, "/v1/admin/jobs/retention/run")).await;
    assert!(run.status < 300, "{:?}", run.body);
    send(app.req(Method::GET, &path(id, "3EB0OLD")))
        .await
        .assert_problem(404, "message_not_found");
    assert!(
        entity::inbound_media::Entity::find()
            .all(&db)
            .await
            .expect("rows")
            .is_empty()
    );
    db.close().await.ok();
}
