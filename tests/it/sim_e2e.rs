//! End to end against the wasim simulator: the real gateway (real engine,
//! the unmodified whatsapp-rust client, our SeaORM store), a real database,
//! a real webhook receiver, and a simulated WhatsApp on 127.0.0.1.
//! Built only with `--features sim`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::engine::scripted::ScriptedEngine;
use wagate::whatsapp::WhatsAppEngine;
use wagate::whatsapp::store::SeaBackends;
use wasim::Sim;

use crate::harness::{TestApp, TestDb, send, settings_with};
use crate::receiver::Receiver;

/// Pairing includes the client's 10 s wait for an app-state key share the
/// simulated phone does not send; everything else takes milliseconds.
const WITHIN: Duration = Duration::from_secs(60);

struct Gateway {
    app: TestApp,
    receiver: Receiver,
}

/// The gateway in this process with the real engine pointed at `sim`.
async fn gateway(db: TestDb, sim: &Sim) -> Gateway {
    let url = sim.ws_url();
    let backends = Arc::new(SeaBackends::new(db.connect().await));
    let settings = settings_with(&db, |f| {
        f.merge(("whatsapp.ws_url", url.as_str()))
            .merge(("whatsapp.answer_timeout_secs", 20))
    });
    let engine = Arc::new(
        WhatsAppEngine::new(backends, Some(url.clone()), Duration::from_secs(10)).expect("engine"),
    );
    let app = TestApp::spawn_with_engine(db, settings, engine, ScriptedEngine::new()).await;
    Gateway {
        app,
        receiver: Receiver::start().await,
    }
}

impl Gateway {
    async fn new_instance(&self) -> (Uuid, String) {
        let r = send(self.app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
        let id: Uuid = r.body["id"].as_str().expect("id").parse().expect("uuid");
        let hook = send(
            self.app
                .req(Method::POST, &format!("/v1/instances/{id}/webhooks"))
                .json(&json!({ "url": self.receiver.url("/hook") })),
        )
        .await;
        assert_eq!(hook.status, 201, "{:?}", hook.body);
        let secret = hook.body["secret"].as_str().expect("secret").to_owned();
        (id, secret)
    }

    async fn instance(&self, id: Uuid) -> Value {
        send(self.app.req(Method::GET, &format!("/v1/instances/{id}")))
            .await
            .body
    }

    /// The first webhook of `kind` for `id`, verified against `secret`;
    /// fails past [`WITHIN`].
    async fn webhook(&self, id: Uuid, kind: &str, secret: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let found = self.receiver.requests().into_iter().find(|r| {
                let body = r.json();
                body["type"] == kind && body["instance_id"] == id.to_string()
            });
            if let Some(request) = found {
                let mut headers = poem::http::HeaderMap::new();
                for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                    headers.insert(name, request.header(name).parse().expect("header"));
                }
                standardwebhooks::Webhook::new(secret)
                    .expect("secret")
                    .verify(&request.body, &headers)
                    .expect("the signature verifies");
                return request.json();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} webhook within {WITHIN:?}; got {:?}",
                self.receiver
                    .requests()
                    .iter()
                    .map(|r| r.json()["type"].clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Logs in, has the simulator scan the first QR code as `phone`, and
    /// waits for `instance.connected`.
    async fn pair(&self, sim: &Sim, id: Uuid, secret: &str, phone: &str) {
        let login = send(self.app.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
        assert_eq!(login.status, 200, "{:?}", login.body);
        assert_eq!(login.body["status"], "qr_pending");
        let code = login.body["qr"]["code"].as_str().expect("qr code");
        let jid = sim.scan_qr(code, phone).expect("the phone scans the QR code");
        assert!(jid.starts_with(phone), "{jid}");
        self.webhook(id, "instance.connected", secret).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_scan_pairs_and_connects_the_instance() {
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;

    gw.pair(&sim, id, &secret, "6281234567890").await;

    let paired = gw.webhook(id, "instance.paired", &secret).await;
    assert_eq!(paired["data"]["phone_number"], "6281234567890", "{paired}");
    let instance = gw.instance(id).await;
    assert_eq!(instance["status"], "online", "{instance}");
    assert_eq!(instance["phone_number"], "6281234567890", "{instance}");
    assert_eq!(instance["is_connected"], true, "{instance}");
}
