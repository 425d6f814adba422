//! The real whatsapp-rust client inside the gateway, with no server to talk
//! to: what can run offline, runs.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use entity::instances::{ActiveModel, Status};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::json;
use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;
use wagate::whatsapp::store::SeaBackends;
use wagate::whatsapp::{BackendSource, WhatsAppEngine};
use whatsapp_rust::wacore_binary::builder::NodeBuilder;

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};

/// A ws:// URL where nothing listens.
fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("ws://127.0.0.1:{port}/ws/chat")
}

async fn real_app(db: TestDb) -> (TestApp, Arc<WhatsAppEngine>, Arc<SeaBackends>) {
    let url = unreachable_url();
    let backends = Arc::new(SeaBackends::new(db.connect().await, Default::default()));
    let settings = settings_with(&db, |f| {
        f.merge(("whatsapp.ws_url", url.as_str()))
            .merge(("whatsapp.answer_timeout_secs", 10))
    });
    let engine = Arc::new(
        WhatsAppEngine::new(backends.clone(), Some(url.clone()), Duration::from_secs(1))
            .expect("engine"),
    );
    let app = TestApp::spawn_with_engine(db, settings, engine.clone(), ScriptedEngine::new()).await;
    (app, engine, backends)
}

/// The server's pair-device IQ with six refs, as the crate's handler expects.
fn pair_device_iq() -> whatsapp_rust::wacore_binary::Node {
    NodeBuilder::new("iq")
        .attrs([
            ("from", "s.whatsapp.net".to_string()),
            ("type", "set".to_string()),
            ("id", "pair-test".to_string()),
            ("xmlns", "md".to_string()),
        ])
        .children([NodeBuilder::new("pair-device")
            .children((0..6).map(|i| {
                NodeBuilder::new("ref")
                    .bytes(format!("2@gateway-ref-{i}").into_bytes())
                    .build()
            }))
            .build()])
        .build()
}

#[tokio::test]
async fn the_crates_pairing_handler_yields_real_qr_codes_through_our_api() {
    let (app, engine, backends) = real_app(TestDb::new().await).await;
    let created = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    let id: Uuid = created.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");

    let login = tokio::spawn({
        let req = app.req(Method::POST, &format!("/v1/instances/{id}/login"));
        async move { send(req).await }
    });
    let client = eventually("the client to start", || async { engine.client(id) }).await;
    let iq = pair_device_iq();
    assert!(whatsapp_rust::pair::handle_iq(&client, &iq.as_node_ref()).await);

    let login = login.await.expect("login task");
    assert_eq!(login.status, 200, "{:?}", login.body);
    assert_eq!(login.body["status"], "qr_pending");
    let code = login.body["qr"]["code"].as_str().expect("code").to_owned();
    let parts: Vec<&str> = code.split(',').collect();
    assert_eq!(parts.len(), 5, "ref,noise,identity,adv,platform: {code}");
    assert_eq!(parts[0], "2@gateway-ref-0");
    assert_eq!(login.body["qr"]["attempt"], 1);

    // The identity key in the QR is the one our database store holds.
    let device = backends
        .backend(id)
        .load()
        .await
        .expect("load")
        .expect("a device was stored");
    let identity = base64::engine::general_purpose::STANDARD
        .encode(device.identity_key.public_key.public_key_bytes());
    assert_eq!(parts[2], identity);

    let qr = send(app.req(Method::GET, &format!("/v1/instances/{id}/qr"))).await;
    assert_eq!(qr.body["code"], code.as_str());
}

#[tokio::test]
async fn no_network_means_disconnected_with_a_reason() {
    let db = TestDb::new().await;
    let id = {
        // A paired instance from an earlier run.
        let conn = db.connect().await;
        let instance = wagate::instances::store::create(&conn, Some("paired".into()))
            .await
            .expect("create");
        ActiveModel {
            id: Set(instance.id),
            status: Set(Status::Online),
            phone_number: Set(Some("6281234567893".into())),
            is_connected: Set(true),
            ..Default::default()
        }
        .update(&conn)
        .await
        .expect("update");
        conn.close().await.ok();
        instance.id
    };
    let (app, engine, _) = real_app(db).await;
    let instance = eventually("the failed connection to be reported", || async {
        let i = send(app.req(Method::GET, &format!("/v1/instances/{id}")))
            .await
            .body;
        i["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("could not reach WhatsApp"))
            .then_some(i)
    })
    .await;
    assert_eq!(instance["status"], "disconnected");
    assert_eq!(instance["is_connected"], false);
    assert!(engine.client(id).is_some(), "the client keeps retrying");
    // Still serving.
    assert_eq!(send(app.http.get(app.url("/healthz"))).await.status, 200);
}

#[tokio::test]
async fn the_http_adapter_returns_error_statuses_as_answers() {
    use poem::listener::{Acceptor, Listener, TcpListener};
    use whatsapp_rust::http::{HttpClient, HttpRequest};

    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("addr");
    let app = poem::Route::new().at(
        "/missing",
        poem::endpoint::make_sync(|_| {
            poem::Response::builder()
                .status(poem::http::StatusCode::NOT_FOUND)
                .body("nope")
        }),
    );
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));

    let http = wagate::whatsapp::http::ReqwestHttp::new().expect("client");
    let answer = http
        .execute(HttpRequest::get(format!("http://{addr}/missing")))
        .await
        .expect("a 404 is an answer, not an error");
    assert_eq!(answer.status_code, 404);
    assert_eq!(answer.body, b"nope");
}
