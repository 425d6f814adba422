//! Encryption at rest, end to end: with a key, webhook deliveries still
//! verify and the secret endpoint reveals the secret, while a dump of the
//! database holds no secret and no key material; without a key the same
//! dump holds them all (which is what keeps the first check honest).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use poem::http::{HeaderMap, HeaderValue};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, Statement};
use serde_json::json;
use uuid::Uuid;
use wagate::sealing::{KeyList, Keyring};
use wagate::webhooks::{EventType, record};
use wagate::whatsapp::BackendSource;
use wagate::whatsapp::store::SeaBackends;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::MsgSecretEntry;

use crate::harness::{TestApp, TestDb, base_figment, send};
use crate::receiver::Receiver;

const WITHIN: Duration = Duration::from_secs(20);

/// A fresh key in the form the setting takes.
pub fn new_key() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    B64.encode(bytes)
}

pub fn keyring(key: Option<&str>) -> Keyring {
    Keyring::from_config(key.unwrap_or(""), &KeyList::default()).expect("keyring")
}

async fn spawn(key: Option<&str>) -> TestApp {
    let key = key.unwrap_or("").to_owned();
    TestApp::spawn_with(move |f| f.merge(("encryption_key", key))).await
}

async fn create_instance(app: &TestApp) -> Uuid {
    let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").parse().expect("uuid")
}

/// Registers a webhook at `base`; returns its id and secret.
async fn register(app: &TestApp, base: &str, url: String) -> (Uuid, String) {
    let r = send(app.req(Method::POST, base).json(&json!({ "url": url }))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    (
        r.body["id"].as_str().expect("id").parse().expect("uuid"),
        r.body["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn stored_secret(db: &DatabaseConnection, id: Uuid) -> entity::webhooks::Model {
    entity::webhooks::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("webhook row")
}

fn verify(secret: &str, req: &crate::receiver::Recorded, signature: &str) {
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp"] {
        headers.insert(name, req.headers[name].clone());
    }
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).expect("header"),
    );
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(&req.body, &headers)
        .unwrap_or_else(|e| panic!("signature {signature} does not verify: {e:?}"));
}

async fn emit(app: &TestApp, instance: Uuid) {
    let db = app.db.connect().await;
    record(&db, instance, EventType::MessageSent, json!({ "n": 1 }))
        .await
        .expect("record");
    db.close().await.ok();
    app.webhooks.wake();
}

#[tokio::test]
async fn with_a_key_secrets_are_sealed_yet_sign_and_reveal() {
    let key = new_key();
    let app = spawn(Some(&key)).await;
    let receiver = Receiver::start().await;
    let inst = create_instance(&app).await;
    let base = format!("/v1/instances/{inst}/webhooks");
    let (hook, secret) = register(&app, &base, receiver.url("/inst")).await;
    let (global, global_secret) = register(&app, "/v1/webhooks", receiver.url("/global")).await;

    let db = app.db.connect().await;
    for (id, plain) in [(hook, &secret), (global, &global_secret)] {
        let row = stored_secret(&db, id).await;
        assert!(row.secret.starts_with("enc:v1:"), "sealed: {}", row.secret);
        assert!(!row.secret.contains(plain.trim_start_matches("whsec_")));
    }

    // The reveal endpoints open it.
    let r = send(app.req(Method::GET, &format!("{base}/{hook}/secret"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["secret"], secret.as_str());
    let r = send(app.req(Method::GET, &format!("/v1/webhooks/{global}/secret"))).await;
    assert_eq!(r.body["secret"], global_secret.as_str());

    // Both deliveries verify with the official crate and the plain secrets.
    emit(&app, inst).await;
    let got = receiver.wait_for(2, WITHIN).await;
    for req in &got {
        let s = if req.path == "/inst" {
            &secret
        } else {
            &global_secret
        };
        verify(s, req, req.header("webhook-signature"));
    }

    // A rotation keeps both secrets sealed; both sign during the overlap.
    let r = send(app.req(
        Method::POST,
        &format!("{base}/{hook}/rotate-secret?overlap_secs=600"),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new_secret = r.body["secret"].as_str().expect("secret").to_owned();
    assert_eq!(r.body["previous_secret"], secret.as_str());
    let row = stored_secret(&db, hook).await;
    assert!(row.secret.starts_with("enc:v1:"));
    assert!(
        row.previous_secret
            .as_deref()
            .is_some_and(|p| p.starts_with("enc:v1:")),
        "{:?}",
        row.previous_secret
    );
    let r = send(app.req(Method::GET, &format!("{base}/{hook}/secret"))).await;
    assert_eq!(r.body["secret"], new_secret.as_str());
    assert_eq!(r.body["previous_secret"], secret.as_str());

    emit(&app, inst).await;
    let got = receiver.wait_for(4, WITHIN).await;
    let req = got[2..]
        .iter()
        .find(|r| r.path == "/inst")
        .expect("instance delivery");
    let sigs: Vec<&str> = req.header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    verify(&new_secret, req, sigs[0]);
    verify(&secret, req, sigs[1]);
    db.close().await.ok();
}

#[tokio::test]
async fn a_secret_no_configured_key_opens_is_retried_not_sent_unsigned() {
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let instance = wagate::instances::store::create(&conn, None)
        .await
        .expect("instance");
    let receiver = Receiver::start().await;
    // Sealed with a key the server will not have.
    let (hook, _) = wagate::webhooks::registry::create(
        &conn,
        &keyring(Some(&new_key())),
        wagate::webhooks::registry::Scope::Instance(instance.id),
        wagate::webhooks::registry::Changes {
            url: Some(receiver.url("/")),
            ..Default::default()
        },
        &wagate::outbound::Targets::new(true, &[]),
    )
    .await
    .expect("create");
    conn.close().await.ok();

    let key = new_key();
    let settings = crate::harness::settings_with(&db, |f| f.merge(("encryption_key", key)));
    let engine = wagate::engine::scripted::ScriptedEngine::new();
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let r = send(app.req(
        Method::GET,
        &format!("/v1/instances/{}/webhooks/{}/secret", instance.id, hook.id),
    ))
    .await;
    r.assert_problem(500, "internal_error");

    emit(&app, instance.id).await;
    let path = format!(
        "/v1/instances/{}/webhooks/{}/deliveries",
        instance.id, hook.id
    );
    let attempt = crate::harness::eventually("an attempt is recorded", || async {
        let r = send(app.req(Method::GET, &path)).await;
        let delivery = r.body["items"].as_array()?.first()?.clone();
        let id = delivery["id"].as_str()?.to_owned();
        let r = send(app.req(Method::GET, &format!("{path}/{id}/attempts"))).await;
        r.body["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(attempt["error_kind"], "secret_unavailable", "{attempt:?}");
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|e| e.contains("encryption_key")),
        "{attempt:?}"
    );
    assert!(receiver.requests().is_empty(), "nothing went out");
}

/// Everything a database holds, as bytes to search: the SQLite file and its
/// write-ahead log, or every row of every table rendered as text by
/// PostgreSQL (bytea as `\x` hex).
async fn dump(db: &TestDb) -> Vec<u8> {
    let conn = db.connect().await;
    let out = match conn.get_database_backend() {
        DatabaseBackend::Postgres => {
            let tables = conn
                .query_all_raw(Statement::from_string(
                    DatabaseBackend::Postgres,
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                ))
                .await
                .expect("tables");
            let mut out = Vec::new();
            for t in tables {
                let name: String = t.try_get("", "tablename").expect("name");
                let rows = conn
                    .query_all_raw(Statement::from_string(
                        DatabaseBackend::Postgres,
                        format!("SELECT t::text AS row FROM \"{name}\" t"),
                    ))
                    .await
                    .expect("rows");
                for row in rows {
                    let text: String = row.try_get("", "row").expect("row text");
                    out.extend_from_slice(text.as_bytes());
                    out.push(b'\n');
                }
            }
            out
        }
        _ => {
            conn.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await
                .ok();
            let path = db.url.trim_start_matches("sqlite://").to_owned();
            let mut out = std::fs::read(&path).expect("database file");
            if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
                out.extend_from_slice(&wal);
            }
            out
        }
    };
    conn.close().await.ok();
    out
}

/// The forms a secret could take in a dump: raw, hex, base64.
fn forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        bytes.to_vec(),
        hex.into_bytes(),
        B64.encode(bytes).into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn random_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    out
}

/// A server with `key` (or none): an instance, a webhook and a global one,
/// and device key material written through the real store. Returns the
/// dump and, per secret, every form it could take in it.
async fn dump_after_pairing(key: Option<&str>) -> (Vec<u8>, Vec<(&'static str, Vec<Vec<u8>>)>) {
    let app = spawn(key).await;
    let inst = create_instance(&app).await;
    let (_, secret) = register(
        &app,
        &format!("/v1/instances/{inst}/webhooks"),
        "http://127.0.0.1:9/".into(),
    )
    .await;
    let (_, global_secret) = register(&app, "/v1/webhooks", "http://127.0.0.1:9/".into()).await;

    // The store the real engine would use for this instance, with the
    // server's keyring.
    let backends = SeaBackends::new(app.db.connect().await, keyring(key));
    let store = backends.backend(inst);
    let mut device = Device::new();
    let adv = random_bytes();
    device.adv_secret_key = adv;
    let identity_private = *device.identity_key.private_key.serialize();
    store.save(&device).await.expect("save device");
    let identity = random_bytes();
    let session = random_bytes();
    let prekey = random_bytes();
    let sender_key = random_bytes();
    let msg_secret = random_bytes();
    store
        .put_identity("111@s.whatsapp.net", identity)
        .await
        .expect("identity");
    store
        .put_session("111.0@s.whatsapp.net", &session)
        .await
        .expect("session");
    store
        .store_prekeys_batch(&[(7, Bytes::copy_from_slice(&prekey))], false)
        .await
        .expect("prekey");
    store
        .put_sender_key("group@g.us:111", &sender_key)
        .await
        .expect("sender key");
    store
        .put_msg_secrets(vec![MsgSecretEntry {
            chat: "111@s.whatsapp.net".into(),
            sender: "111@s.whatsapp.net".into(),
            msg_id: "ABC".into(),
            secret: msg_secret,
            expires_at: 0,
            message_ts: 1,
        }])
        .await
        .expect("msg secret");
    drop(store);
    drop(backends);

    let mut needles: Vec<(&'static str, Vec<Vec<u8>>)> = Vec::new();
    for (what, s) in [
        ("webhook secret", &secret),
        ("global secret", &global_secret),
    ] {
        let decoded = B64
            .decode(s.trim_start_matches("whsec_"))
            .expect("secret base64");
        let mut f = forms(&decoded);
        f.push(s.as_bytes().to_vec());
        needles.push((what, f));
    }
    // The device row is JSON: its byte arrays appear as `[1,2,...` there
    // (a key pair's private key is followed by its public key).
    let json_of = |b: &[u8]| {
        let mut text = serde_json::to_string(b).expect("json").into_bytes();
        text.pop();
        text
    };
    let mut adv_forms = forms(&adv);
    adv_forms.extend(forms(&json_of(&adv)));
    needles.push(("device adv secret key", adv_forms));
    let mut id_forms = forms(&identity_private);
    id_forms.extend(forms(&json_of(&identity_private)));
    needles.push(("device identity private key", id_forms));
    needles.push(("identity key", forms(&identity)));
    needles.push(("session record", forms(&session)));
    needles.push(("prekey record", forms(&prekey)));
    needles.push(("sender key record", forms(&sender_key)));
    needles.push(("message secret", forms(&msg_secret)));
    if let Some(key) = key {
        let mut f = forms(&B64.decode(key).expect("key"));
        f.push(key.as_bytes().to_vec());
        needles.push(("encryption key", f));
    }
    let db = app.into_db();
    // Let the server let go of the file before it is read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dumped = dump(&db).await;
    (dumped, needles)
}

#[tokio::test]
async fn a_database_dump_shows_no_secret_or_key_material() {
    let key = new_key();
    let (dumped, needles) = dump_after_pairing(Some(&key)).await;
    assert!(!dumped.is_empty());
    for (what, forms) in &needles {
        for form in forms {
            assert!(
                !contains(&dumped, form),
                "the dump holds the {what} ({})",
                String::from_utf8_lossy(form)
            );
        }
    }
}

#[tokio::test]
async fn without_a_key_the_same_dump_shows_them_all() {
    let (dumped, needles) = dump_after_pairing(None).await;
    for (what, forms) in &needles {
        assert!(
            forms.iter().any(|f| contains(&dumped, f)),
            "the plain dump should hold the {what}: the search cannot find it"
        );
    }
}

#[tokio::test]
async fn a_bad_key_fails_start_naming_the_setting() {
    let db = TestDb::new().await;
    for (setting, value) in [
        ("encryption_key", "c2hvcnQ="),
        ("encryption_key", "not base64!"),
        ("previous_encryption_keys", "c2hvcnQ="),
    ] {
        let figment = base_figment(&db).merge((setting, value));
        let err = match wagate::config::Settings::from_figment(figment) {
            Ok(_) => panic!("{setting} = {value} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(setting), "{err}");
        assert!(!err.contains(value), "the value is not echoed: {err}");
    }
}
