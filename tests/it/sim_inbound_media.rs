//! Inbound media end to end: a simulated contact encrypts and uploads each
//! kind to the simulator's media host and sends it; the real gateway (the
//! unmodified whatsapp-rust client) downloads and decrypts it, and the test
//! fetches it through the media route and compares bytes and hash. Also: a
//! link that answers 404 recovered through the phone's re-upload, a file
//! over the limit, ranges and scopes.

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use wasim::Sim;
use wasim::media::{Kind, MediaOptions};

use crate::harness::{TestDb, send};
use crate::sim_e2e::{Gateway, gateway_with};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes that differ per kind and position.
fn content(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(tag)) as u8
        })
        .collect()
}

async fn paired(
    sim: &Sim,
    phone: &str,
    friend: &str,
    env: &[(&str, &str)],
) -> (Gateway, uuid::Uuid, String, tempfile::TempDir) {
    sim.register_number(friend).expect("directory");
    let dir = tempfile::tempdir().expect("media dir");
    let media_dir = dir.path().display().to_string();
    let mut env = env.to_vec();
    env.push(("WAGATE_MEDIA__DIR", media_dir.as_str()));
    let gw = gateway_with(TestDb::new().await, sim, &env).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair_ready(sim, id, &secret, phone).await;
    (gw, id, secret, dir)
}

async fn fetch(
    gw: &Gateway,
    id: uuid::Uuid,
    message_id: &str,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let r = gw
        .req(
            Method::GET,
            &format!("/v1/instances/{id}/messages/{message_id}/media"),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "{message_id}");
    let headers = r.headers().clone();
    (headers, r.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_downloaded_decrypted_and_served() {
    const PHONE: &str = "6281234567911";
    const FRIEND: &str = "6281234567912";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret, _dir) = paired(&sim, PHONE, FRIEND, &[]).await;
    let kinds = [
        (Kind::Image, "image", 20_000, "image/jpeg"),
        (Kind::Video, "video", 300_000, "video/mp4"),
        (Kind::Audio, "audio", 9_000, "audio/mpeg"),
        (Kind::Voice, "voice", 7_000, "audio/ogg; codecs=opus"),
        (Kind::Document, "document", 50_001, "application/pdf"),
        (Kind::Sticker, "sticker", 3_000, "image/webp"),
    ];
    for (n, (kind, name, len, mime)) in kinds.into_iter().enumerate() {
        let bytes = content(n as u8 + 1, len);
        let sent = sim
            .send_media(
                FRIEND,
                PHONE,
                kind,
                &bytes,
                MediaOptions {
                    mime_type: Some(mime.into()),
                    file_name: (kind == Kind::Document).then(|| "laporan.pdf".into()),
                    caption: (kind == Kind::Image).then(|| "lihat ini".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("the contact sends media");
        assert_eq!(sent.sha256, hex(&Sha256::digest(&bytes)));
        let received = gw
            .message_webhook(id, "message.received", &secret, &sent.id)
            .await;
        let media = &received["data"]["media"];
        assert_eq!(received["data"]["kind"], name, "{received}");
        assert_eq!(media["sha256"], sent.sha256, "{received}");
        assert_eq!(media["size"], len, "{received}");
        assert_eq!(media["mime_type"], mime, "{received}");
        assert_eq!(
            media["url"],
            format!("/v1/instances/{id}/messages/{}/media", sent.id)
        );
        let ready = gw
            .message_webhook(id, "message.media_ready", &secret, &sent.id)
            .await;
        assert_eq!(ready["data"]["media"]["status"], "ready", "{ready}");
        let (headers, body) = fetch(&gw, id, &sent.id).await;
        assert_eq!(headers["content-type"], mime);
        assert_eq!(headers["content-length"], len.to_string().as_str());
        assert_eq!(hex(&Sha256::digest(&body)), sent.sha256, "{name}");
        assert!(body == bytes, "{name}: the bytes differ");
        if kind == Kind::Video {
            let part = gw
                .req(
                    Method::GET,
                    &format!("/v1/instances/{id}/messages/{}/media", sent.id),
                )
                .header("Range", "bytes=1000-1999")
                .send()
                .await
                .expect("range");
            assert_eq!(part.status(), 206);
            assert_eq!(
                part.headers()["content-range"],
                format!("bytes 1000-1999/{len}").as_str()
            );
            assert!(part.bytes().await.expect("body").as_ref() == &bytes[1000..2000]);
            // A key that may only send on this instance cannot read it.
            let made = send(
                gw.req(Method::POST, "/v1/keys")
                    .json(&json!({"instances": [id], "scopes": ["send"], "name": "sender only"})),
            )
            .await;
            let key = made.body["key"].as_str().expect("key").to_owned();
            let denied = reqwest::Client::new()
                .get(
                    gw.process
                        .url(&format!("/v1/instances/{id}/messages/{}/media", sent.id)),
                )
                .bearer_auth(key)
                .send()
                .await
                .expect("get");
            assert_eq!(denied.status(), 403);
        }
    }
    assert_eq!(sim.media_reuploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_is_recovered_through_a_re_upload() {
    const PHONE: &str = "6281234567921";
    const FRIEND: &str = "6281234567922";
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret, _dir) = paired(&sim, PHONE, FRIEND, &[]).await;
    let bytes = content(9, 40_000);
    let sent = sim
        .send_media(
            FRIEND,
            PHONE,
            Kind::Image,
            &bytes,
            MediaOptions {
                expired: true,
                ..Default::default()
            },
        )
        .await
        .expect("the contact sends media");
    let ready = gw
        .message_webhook(id, "message.media_ready", &secret, &sent.id)
        .await;
    assert_eq!(ready["data"]["media"]["sha256"], sent.sha256, "{ready}");
    assert_eq!(sim.media_reuploads(), 1, "the phone uploaded it again once");
    let (_, body) = fetch(&gw, id, &sent.id).await;
    assert!(body == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_over_the_limit_fails_as_too_large() {
    const PHONE: &str = "6281234567931";
    const FRIEND: &str = "6281234567932";
    let sim = Sim::start().await.expect("simulator");
    let env = [("WAGATE_MEDIA__MAX_INBOUND_BYTES", "10000")];
    let (gw, id, secret, _dir) = paired(&sim, PHONE, FRIEND, &env).await;
    let sent = sim
        .send_media(
            FRIEND,
            PHONE,
            Kind::Video,
            &content(3, 10_001),
            MediaOptions::default(),
        )
        .await
        .expect("the contact sends media");
    let received = gw
        .message_webhook(id, "message.received", &secret, &sent.id)
        .await;
    assert_eq!(received["data"]["media"]["status"], "failed", "{received}");
    assert_eq!(received["data"]["media"]["error"], "media_too_large");
    let r = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/messages/{}/media", sent.id),
    ))
    .await;
    r.assert_problem(409, "media_failed");
}
