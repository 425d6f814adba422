//! Media from a URL: a local file server on 127.0.0.1, the SSRF guard, the
//! timeout and the size limit.

use std::net::SocketAddr;
use std::time::Duration;

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Redirect;
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler};
use reqwest::Method;
use serde_json::json;
use wagate::engine::MediaKind;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{Reply, TestApp, TestDb, send, settings_with};
use crate::pairing::{new_instance, pair_and_connect};

const SENDER: &str = "6281234567890";
const FRIEND: &str = "6281299990000";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

#[handler]
fn pic() -> Response {
    Response::builder()
        .content_type("image/png")
        .body(PNG.to_vec())
}

#[handler]
fn big() -> Vec<u8> {
    vec![b'x'; 5000]
}

#[handler]
async fn slow() -> Vec<u8> {
    // A server that takes longer than the gateway waits.
    tokio::time::sleep(Duration::from_secs(10)).await;
    PNG.to_vec()
}

#[handler]
fn missing() -> impl IntoResponse {
    poem::http::StatusCode::NOT_FOUND
}

#[handler]
fn hop() -> Redirect {
    Redirect::temporary("/files/pic.png")
}

#[handler]
fn redirect(
    poem::web::Query(to): poem::web::Query<std::collections::HashMap<String, String>>,
) -> Redirect {
    Redirect::temporary(to.get("to").cloned().unwrap_or_default())
}

#[handler]
fn forever() -> Redirect {
    Redirect::temporary("/files/forever")
}

async fn file_server() -> SocketAddr {
    file_server_on("127.0.0.1").await
}

async fn file_server_on(ip: &str) -> SocketAddr {
    let acceptor = TcpListener::bind(format!("{ip}:0"))
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("addr");
    let app = Route::new()
        .at("/files/pic.png", get(pic))
        .at("/files/big", get(big))
        .at("/files/slow", get(slow))
        .at("/files/missing", get(missing))
        .at("/files/hop", get(hop))
        .at("/files/forever", get(forever))
        .at("/files/redirect", get(redirect))
        .map_to_response();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    addr
}

async fn online(tweak: impl FnOnce(figment::Figment) -> figment::Figment) -> TestApp {
    let db = TestDb::new().await;
    let settings = settings_with(&db, tweak);
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let id = new_instance(&app).await;
    pair_and_connect(&app, id, SENDER).await;
    app
}

async fn send_url(app: &TestApp, url: String) -> Reply {
    send(
        app.req(Method::POST, &format!("/send/by-number/{SENDER}/media-url"))
            .json(&json!({"to": FRIEND, "url": url, "caption": "see"})),
    )
    .await
}

#[tokio::test]
async fn fetched_sniffed_and_sent() {
    let files = file_server().await;
    let app = online(|f| f).await;
    for path in ["/files/pic.png", "/files/hop"] {
        let r = send_url(&app, format!("http://{files}{path}")).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    let media: Vec<_> = app
        .engine
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::SendMedia {
                kind,
                size,
                file_name,
                ..
            } => Some((kind, size, file_name)),
            _ => None,
        })
        .collect();
    assert_eq!(media.len(), 2);
    assert!(
        media
            .iter()
            .all(|(k, s, _)| *k == MediaKind::Image && *s == PNG.len())
    );
    assert_eq!(media[0].2.as_deref(), Some("pic.png"));
}

#[tokio::test]
async fn each_failure_has_its_code() {
    let files = file_server().await;
    let app = online(|f| {
        f.merge(("messaging.max_media_bytes", 1024))
            .merge(("messaging.media_fetch_timeout_secs", 1))
    })
    .await;
    let not_found = send_url(&app, format!("http://{files}/files/missing")).await;
    not_found.assert_problem(502, "media_fetch_failed");
    assert!(
        not_found.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("404"))
    );
    send_url(&app, format!("http://{files}/files/big"))
        .await
        .assert_problem(413, "media_too_large");
    let too_slow = send_url(&app, format!("http://{files}/files/slow")).await;
    too_slow.assert_problem(502, "media_fetch_failed");
    assert!(
        too_slow.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("timed out"))
    );
    send_url(&app, format!("http://{files}/files/forever"))
        .await
        .assert_problem(502, "media_fetch_failed");
    // Not http(s): the document's pattern refuses it before any fetch.
    send_url(&app, "ftp://example.com/x.png".into())
        .await
        .assert_problem(422, "invalid_body");
    assert!(
        !app.engine
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SendMedia { .. })),
        "nothing was sent"
    );
}

#[tokio::test]
async fn the_guard_refuses_private_targets() {
    let files = file_server().await;
    let port = files.port();
    // 127.0.0.2 is loopback too, but allowed by name: it stands in for a
    // public host, from which the redirects below try to reach loopback.
    let allowed = file_server_on("127.0.0.2").await;
    let app = online(|f| {
        f.merge(("allow_private_targets", false))
            .merge(("allowed_targets", vec!["127.0.0.2/32"]))
    })
    .await;
    let table = [
        format!("http://127.0.0.1:{port}/files/pic.png"),
        format!("http://[::1]:{port}/files/pic.png"),
        "http://10.0.0.1/x.png".to_owned(),
        "http://172.16.0.1/x.png".to_owned(),
        "http://172.31.255.254/x.png".to_owned(),
        "http://192.168.1.1/x.png".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/files/pic.png"),
        format!("http://0.0.0.0:{port}/files/pic.png"),
        // A name that resolves to loopback.
        format!("http://localhost:{port}/files/pic.png"),
        // An allowed host that redirects to loopback, by address and by name.
        format!("http://{allowed}/files/redirect?to=http://127.0.0.1:{port}/files/pic.png"),
        format!("http://{allowed}/files/redirect?to=http://localhost:{port}/files/pic.png"),
    ];
    for url in table {
        let r = send_url(&app, url.clone()).await;
        assert_eq!(r.status, 422, "{url}: {:?}", r.body);
        r.assert_problem(422, "media_url_forbidden");
    }
    assert!(
        !app.engine
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SendMedia { .. })),
        "nothing was sent"
    );
    // The allowed host itself, and a redirect within it, pass.
    for url in [
        format!("http://{allowed}/files/pic.png"),
        format!("http://{allowed}/files/redirect?to=/files/pic.png"),
    ] {
        let r = send_url(&app, url.clone()).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
    }
    let open = online(|f| f).await;
    assert_eq!(
        send_url(&open, format!("http://{files}/files/pic.png"))
            .await
            .status,
        200,
        "the same URL passes with private targets allowed"
    );
}
