//! End to end against the wasim simulator: the real gateway binary as its
//! own process (real engine, the unmodified whatsapp-rust client, our
//! SeaORM store), a real database, a real webhook receiver, and a simulated
//! WhatsApp on 127.0.0.1. Built only with `--features sim`, which the
//! binary under test then has too.

use std::time::Duration;

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::whatsapp::store::SeaBackends;
use wasim::Sim;

use crate::harness::{ADMIN_KEY, TestDb, http_client, send};
use crate::process::{Running, start, wagate};
use crate::receiver::Receiver;
use crate::secrets_at_rest::{keyring, new_key};

/// Generous for a loaded 2-core machine; each step takes milliseconds.
pub(crate) const WITHIN: Duration = Duration::from_secs(60);

pub(crate) struct Gateway {
    // Dropped first: the process lets go of the database before it goes.
    pub(crate) process: Running,
    db: TestDb,
    /// The session keys are sealed at rest, as in production.
    key: String,
    pub(crate) receiver: Receiver,
    http: reqwest::Client,
}

/// Starts the gateway binary on `db`, its WhatsApp server being `sim`.
async fn launch(db: &TestDb, key: &str, sim: &Sim) -> Running {
    launch_with(db, key, sim, &[]).await
}

/// [`launch`] with more environment.
async fn launch_with(db: &TestDb, key: &str, sim: &Sim, env: &[(&str, &str)]) -> Running {
    let mut cmd = wagate(&db.url);
    cmd.envs(env.iter().copied());
    cmd.env("WAGATE_WHATSAPP__WS_URL", sim.ws_url())
        .env("WAGATE_ENCRYPTION_KEY", key)
        // The webhook receiver and the media URLs are on loopback.
        .env("WAGATE_ALLOW_PRIVATE_TARGETS", "true");
    tokio::task::spawn_blocking(move || start(cmd))
        .await
        .expect("the gateway starts")
}

pub(crate) async fn gateway(db: TestDb, sim: &Sim) -> Gateway {
    gateway_with(db, sim, &[]).await
}

/// [`gateway`] with more environment.
pub(crate) async fn gateway_with(db: TestDb, sim: &Sim, env: &[(&str, &str)]) -> Gateway {
    let key = new_key();
    Gateway {
        process: launch_with(&db, &key, sim, env).await,
        db,
        key,
        receiver: Receiver::start().await,
        http: http_client(),
    }
}

impl Gateway {
    /// A request with the admin key.
    pub(crate) fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.process.url(path))
            .bearer_auth(ADMIN_KEY)
    }

    pub(crate) async fn new_instance(&self) -> (Uuid, String) {
        let r = send(self.req(Method::POST, "/v1/instances").json(&json!({}))).await;
        let id: Uuid = r.body["id"].as_str().expect("id").parse().expect("uuid");
        let hook = send(
            self.req(Method::POST, &format!("/v1/instances/{id}/webhooks"))
                .json(&json!({ "url": self.receiver.url("/hook") })),
        )
        .await;
        assert_eq!(hook.status, 201, "{:?}", hook.body);
        let secret = hook.body["secret"].as_str().expect("secret").to_owned();
        (id, secret)
    }

    async fn instance(&self, id: Uuid) -> Value {
        send(self.req(Method::GET, &format!("/v1/instances/{id}")))
            .await
            .body
    }

    /// The first webhook of `kind` for `id`, verified against `secret`;
    /// fails past [`WITHIN`].
    pub(crate) async fn webhook(&self, id: Uuid, kind: &str, secret: &str) -> Value {
        self.webhook_where(id, kind, secret, |_| true).await
    }

    /// The first webhook of `kind` about the message `message_id`.
    pub(crate) async fn message_webhook(
        &self,
        id: Uuid,
        kind: &str,
        secret: &str,
        message_id: &str,
    ) -> Value {
        self.webhook_where(id, kind, secret, |body| {
            body["data"]["message_id"] == message_id
        })
        .await
    }

    pub(crate) async fn webhook_where(
        &self,
        id: Uuid,
        kind: &str,
        secret: &str,
        also: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let found = self.receiver.requests().into_iter().find(|r| {
                let body = r.json();
                body["type"] == kind && body["instance_id"] == id.to_string() && also(&body)
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
    pub(crate) async fn pair(&self, sim: &Sim, id: Uuid, secret: &str, phone: &str) {
        let login = send(self.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
        assert_eq!(login.status, 200, "{:?}", login.body);
        assert_eq!(login.body["status"], "qr_pending");
        let code = login.body["qr"]["code"].as_str().expect("qr code");
        let jid = sim
            .scan_qr(code, phone)
            .expect("the phone scans the QR code");
        assert!(jid.starts_with(phone), "{jid}");
        self.webhook(id, "instance.connected", secret).await;
    }

    /// Pairs `phone`, then waits until its device's prekeys are up: a
    /// contact's phone opens its session to the device with them.
    pub(crate) async fn pair_ready(&self, sim: &Sim, id: Uuid, secret: &str, phone: &str) {
        self.pair(sim, id, secret, phone).await;
        eventually_value("the device's prekeys", || async {
            sim.has_prekeys(phone, 1).then_some(())
        })
        .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_to_a_registered_number_is_sent_delivered_and_read() {
    const SENDER: &str = "6281234567801";
    const FRIEND: &str = "6281234567802";
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(FRIEND).expect("directory");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, SENDER).await;

    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "halo" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mid = r.body["message_id"]
        .as_str()
        .expect("message id")
        .to_owned();
    let sent = gw.webhook(id, "message.sent", &secret).await;
    assert_eq!(sent["data"]["message_id"], mid.as_str(), "{sent}");

    // The contact's phone delivers, then reads, as WhatsApp reports it.
    contact_has(&sim, &mid).await;
    sim.deliver(&mid).expect("delivered receipt");
    let delivered = gw.webhook(id, "message.delivered", &secret).await;
    assert_eq!(delivered["data"]["message_id"], mid.as_str(), "{delivered}");
    sim.read(&mid).expect("read receipt");
    let read = gw.webhook(id, "message.read", &secret).await;
    assert_eq!(read["data"]["message_id"], mid.as_str(), "{read}");
    assert_eq!(read["data"]["recipient"]["phone_number"], FRIEND, "{read}");
    let stored = send(gw.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
    assert_eq!(stored.body["status"], "read", "{:?}", stored.body);

    let unknown = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": "6281234567899", "text": "halo" })),
    )
    .await;
    unknown.assert_problem(422, "number_not_on_whatsapp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_side_unlink_logs_the_instance_out() {
    const PHONE: &str = "6281234567811";
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, PHONE).await;

    sim.unlink(PHONE, 1).expect("unlink");
    gw.webhook(id, "instance.logged_out", &secret).await;
    let instance = eventually_status(&gw, id, "logged_out").await;
    assert_eq!(instance["is_connected"], false, "{instance}");
    // The device's keys are gone from the store.
    let db = gw.db.connect().await;
    let backends = SeaBackends::new(db, keyring(Some(&gw.key)));
    let backend = wagate::whatsapp::BackendSource::backend(&backends, id);
    let stored = eventually_value("the keys to be wiped", || {
        let backend = backend.clone();
        async move { backend.load().await.expect("load").is_none().then_some(()) }
    })
    .await;
    let () = stored;
    // A logged-out instance cannot pair again.
    let login = send(gw.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
    assert!(login.status >= 400, "{:?}", login.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_disconnects_then_the_client_reconnects() {
    const PHONE: &str = "6281234567821";
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, PHONE).await;
    let mut events = sim.events();

    sim.drop_connection(PHONE, 1).expect("drop");
    gw.webhook(id, "instance.disconnected", &secret).await;
    Sim::wait_for(&mut events, WITHIN, |e| {
        matches!(e, wasim::SimEvent::LoggedIn { phone, .. } if phone == PHONE).then_some(())
    })
    .await
    .expect("the client logs in again");
    // A second instance.connected follows the disconnect.
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let types: Vec<String> = gw
            .receiver
            .requests()
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
            .collect();
        let after = types
            .iter()
            .skip_while(|t| *t != "instance.disconnected")
            .any(|t| t == "instance.connected");
        if after {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnect: {types:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually_status(&gw, id, "online").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_restarts_and_reconnects_without_a_new_qr() {
    const PHONE: &str = "6281234567831";
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, PHONE).await;
    let Gateway {
        process,
        db,
        key,
        receiver,
        http,
    } = gw;
    // SIGKILL: no graceful disconnect, no chance to save anything more.
    process.kill();
    eventually_value("the simulator to see the socket close", || async {
        (!sim.is_online(PHONE, 1)).then_some(())
    })
    .await;

    let mut events = sim.events();
    let gw = Gateway {
        process: launch(&db, &key, &sim).await,
        db,
        key,
        receiver,
        http,
    };
    Sim::wait_for(&mut events, WITHIN, |e| {
        matches!(e, wasim::SimEvent::LoggedIn { phone, .. } if phone == PHONE).then_some(())
    })
    .await
    .expect("the stored session logs in");
    let instance = eventually_status(&gw, id, "online").await;
    assert_eq!(instance["phone_number"], PHONE, "{instance}");
    eventually_value("a second instance.connected", || async {
        let connected = gw
            .receiver
            .requests()
            .iter()
            .filter(|r| r.json()["type"] == "instance.connected")
            .count();
        (connected >= 2).then_some(())
    })
    .await;
    // No registration connection was opened: no QR this time.
    let saw_pairing = std::iter::from_fn(|| events.try_recv().ok())
        .any(|e| matches!(e, wasim::SimEvent::PairingStarted { .. }));
    assert!(!saw_pairing);
}

/// Waits until the simulator has taken in message `mid`. `message.sent`
/// may reach the webhook before the simulated server has read the stanza
/// the gateway wrote, so a receipt is only asked for once it has.
pub(crate) async fn contact_has(sim: &Sim, mid: &str) {
    eventually_value("the simulator to hold the message", || async {
        sim.knows_message(mid).then_some(())
    })
    .await
}

async fn eventually_status(gw: &Gateway, id: Uuid, status: &str) -> Value {
    eventually_value(&format!("status {status}"), || async {
        let i = gw.instance(id).await;
        (i["status"] == status).then_some(i)
    })
    .await
}

/// Polls `check` until it returns `Some`, failing past [`WITHIN`].
pub(crate) async fn eventually_value<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_text_is_received() {
    const PHONE: &str = "6281234567841";
    const FRIEND: &str = "6281234567842";
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(FRIEND).expect("directory");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair_ready(&sim, id, &secret, PHONE).await;

    let mid = sim
        .send_text(FRIEND, PHONE, "halo dari simulator")
        .await
        .expect("inbound text");
    let received = gw.webhook(id, "message.received", &secret).await;
    assert_eq!(received["data"]["message_id"], mid.as_str(), "{received}");
    assert_eq!(
        received["data"]["text"], "halo dari simulator",
        "{received}"
    );
    assert_eq!(received["data"]["from_pn"], FRIEND, "{received}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_before_committing_an_inbound_message_records_it_once_after_restart() {
    killed_inside_the_inbound_hook("inbound_before_commit", "6281234567861", "6281234567862").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_after_committing_an_inbound_message_records_it_once_after_restart() {
    killed_inside_the_inbound_hook("inbound_after_commit", "6281234567871", "6281234567872").await;
}

/// The gateway aborts at `fault` (a point in `src/whatsapp/fault.rs`)
/// inside the inbound durability hook, before the client acknowledged the
/// message. Started again, it gets the message again from the server's
/// offline queue and records it exactly once: one event, one row.
async fn killed_inside_the_inbound_hook(fault: &str, phone: &str, friend: &str) {
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(friend).expect("directory");
    let db = TestDb::new().await;
    let key = new_key();
    // A delivery handed off just before the crash comes back after a short
    // lease.
    let env = [
        ("WAGATE_WEBHOOKS__LEASE_SECS", "5"),
        ("WAGATE_WEBHOOKS__REQUEST_TIMEOUT_SECS", "3"),
    ];
    let faulty = [env[0], env[1], ("SIM_FAULT", fault)];
    let gw = Gateway {
        process: launch_with(&db, &key, &sim, &faulty).await,
        db,
        key,
        receiver: Receiver::start().await,
        http: http_client(),
    };
    let (id, secret) = gw.new_instance().await;
    gw.pair_ready(&sim, id, &secret, phone).await;

    let mid = sim
        .send_text(friend, phone, "sampai sekali saja")
        .await
        .expect("inbound text");
    eventually_value("the gateway to die at the fault point", || async {
        (!sim.is_online(phone, 1)).then_some(())
    })
    .await;
    let Gateway {
        process,
        db,
        key,
        receiver,
        http,
    } = gw;
    process.kill();
    assert_eq!(
        sim.unacked(phone, 1),
        1,
        "the message was never acknowledged"
    );

    let gw = Gateway {
        process: launch_with(&db, &key, &sim, &env).await,
        db,
        key,
        receiver,
        http,
    };
    eventually_value("the redelivered message to be acknowledged", || async {
        (sim.unacked(phone, 1) == 0).then_some(())
    })
    .await;
    let received = gw
        .message_webhook(id, "message.received", &secret, &mid)
        .await;
    assert_eq!(received["data"]["text"], "sampai sekali saja", "{received}");

    let events = send(gw.req(
        Method::GET,
        &format!("/v1/instances/{id}/events?limit=1000"),
    ))
    .await;
    let recorded: Vec<&Value> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["type"] == "message.received" && e["data"]["message_id"] == mid.as_str())
        .collect();
    assert_eq!(recorded.len(), 1, "one event: {recorded:?}");
    let conn = gw.db.connect().await;
    let rows = entity::inbound_messages::Entity::find()
        .filter(entity::inbound_messages::Column::WaMessageId.eq(mid.as_str()))
        .count(&conn)
        .await
        .expect("count");
    assert_eq!(rows, 1, "one row");
    // Retries of that one event carry its one id.
    let webhook_ids: std::collections::HashSet<String> = gw
        .receiver
        .requests()
        .iter()
        .filter(|r| r.json()["data"]["message_id"] == mid.as_str())
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(webhook_ids.len(), 1, "{webhook_ids:?}");
}

/// A 1x1 PNG, enough for the gateway's sniffing.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_uploaded_to_the_media_host_and_sent() {
    const SENDER: &str = "6281234567851";
    const FRIEND: &str = "6281234567852";
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(FRIEND).expect("directory");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(&sim, id, &secret, SENDER).await;

    let form = reqwest::multipart::Form::new()
        .text("to", FRIEND)
        .part(
            "file",
            reqwest::multipart::Part::bytes(PNG.to_vec()).file_name("pic.png"),
        )
        .text("caption", "look");
    let file = send(
        gw.req(
            Method::POST,
            &format!("/send/by-number/{SENDER}/media-file"),
        )
        .multipart(form),
    )
    .await;
    assert_eq!(file.status, 200, "{:?}", file.body);
    assert_eq!(
        sim.uploads(),
        1,
        "the encrypted file reached the media host"
    );
    let mid = file.body["message_id"].as_str().expect("id").to_owned();
    gw.message_webhook(id, "message.sent", &secret, &mid).await;
    contact_has(&sim, &mid).await;
    sim.deliver(&mid).expect("delivered");
    gw.message_webhook(id, "message.delivered", &secret, &mid)
        .await;

    let url = sim.serve_file("pic.png", PNG.to_vec());
    let by_url = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}/media-url"))
            .json(&json!({ "to": FRIEND, "url": url, "caption": "see" })),
    )
    .await;
    assert_eq!(by_url.status, 200, "{:?}", by_url.body);
    assert_eq!(sim.uploads(), 2);
    let mid = by_url.body["message_id"].as_str().expect("id").to_owned();
    gw.message_webhook(id, "message.sent", &secret, &mid).await;
    contact_has(&sim, &mid).await;
    sim.read(&mid).expect("read");
    gw.message_webhook(id, "message.read", &secret, &mid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_code_entered_on_the_phone_pairs_the_instance() {
    const PHONE: &str = "6281234567861";
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;

    let r = send(
        gw.req(Method::POST, &format!("/v1/instances/{id}/pair-code"))
            .json(&json!({ "phone_number": PHONE })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let code = r.body["code"].as_str().expect("code");
    assert_eq!(
        sim.enter_pair_code(code).expect("the phone takes the code"),
        PHONE
    );

    gw.webhook(id, "instance.connected", &secret).await;
    let instance = eventually_status(&gw, id, "online").await;
    assert_eq!(instance["phone_number"], PHONE, "{instance}");
}
