//! Key rotation: `wagate reencrypt` moves plain rows and rows sealed with a
//! previous key to the current key, after which the new key alone reads
//! everything.

use std::process::{Command, Stdio};

use bytes::Bytes;
use chrono::{Duration as ChronoDuration, Utc};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use uuid::Uuid;
use wagate::sealing::context::WebhookSecret;
use wagate::sealing::reencrypt::{Counts, ReencryptError, reencrypt};
use wagate::sealing::{Context, KeyList, Keyring};
use wagate::webhooks::registry::{self, Changes, Scope};
use wagate::whatsapp::store::SeaStore;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::traits::DeviceStore;

use crate::harness::{TestApp, TestDb, send, settings_with};
use crate::process::{start, wagate};
use crate::secrets_at_rest::{keyring, new_key};

/// What one instance's store holds, to compare after the rotation.
#[derive(Debug, PartialEq)]
struct Material {
    device: (u32, [u8; 32]),
    identity: Option<[u8; 32]>,
    session: Option<Vec<u8>>,
    prekeys: Vec<(u32, Vec<u8>)>,
}

async fn write_material(store: &dyn Backend, seed: u8) {
    let mut device = Device::new();
    device.registration_id = u32::from(seed);
    device.adv_secret_key = [seed; 32];
    store.save(&device).await.expect("device");
    store
        .put_identity("111@s.whatsapp.net", [seed.wrapping_add(1); 32])
        .await
        .expect("identity");
    store
        .put_session("111.0@s.whatsapp.net", &[seed, 2, 3])
        .await
        .expect("session");
    store
        .store_prekeys_batch(
            &[
                (1, Bytes::from(vec![seed, 1])),
                (2, Bytes::from(vec![seed, 2])),
            ],
            true,
        )
        .await
        .expect("prekeys");
}

async fn read_material(store: &dyn Backend) -> Material {
    let device = store.load().await.expect("device").expect("a device");
    Material {
        device: (device.registration_id, device.adv_secret_key),
        identity: store.load_identity("111@s.whatsapp.net").await.expect("id"),
        session: store
            .get_session("111.0@s.whatsapp.net")
            .await
            .expect("session")
            .map(|b| b.to_vec()),
        prekeys: store
            .load_prekeys_batch(&[1, 2])
            .await
            .expect("prekeys")
            .into_iter()
            .map(|(id, b)| (id, b.to_vec()))
            .collect(),
    }
}

async fn webhook(db: &DatabaseConnection, keys: &Keyring, scope: Scope) -> Uuid {
    let (w, _) = registry::create(
        db,
        keys,
        scope,
        Changes {
            url: Some("http://127.0.0.1:9/".into()),
            ..Default::default()
        },
        &wagate::outbound::Targets::new(true, &[]),
    )
    .await
    .expect("create webhook");
    w.id
}

/// Rotates with an overlap, so the row holds a previous secret too.
async fn rotated_webhook(db: &DatabaseConnection, keys: &Keyring, scope: Scope) -> Uuid {
    let id = webhook(db, keys, scope).await;
    registry::rotate_secret(db, keys, scope, id, 3600)
        .await
        .expect("rotate");
    id
}

async fn secrets_of(db: &DatabaseConnection, keys: &Keyring, id: Uuid) -> (String, Option<String>) {
    let row = entity::webhooks::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("row");
    let s = registry::secrets(keys, &row).expect("secrets open");
    (s.secret, s.previous_secret)
}

fn count(counts: &[Counts], table: &str) -> Counts {
    counts
        .iter()
        .find(|c| c.table == table)
        .cloned()
        .unwrap_or_else(|| panic!("no counts for {table}"))
}

#[tokio::test]
async fn reencrypt_moves_plain_and_old_key_rows_to_the_new_key() {
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let (old_key, new) = (new_key(), new_key());
    let plain = Keyring::default();
    let old = keyring(Some(&old_key));

    // One instance from before any key, one sealed with the old key.
    let a = wagate::instances::store::create(&conn, None)
        .await
        .expect("a");
    let b = wagate::instances::store::create(&conn, None)
        .await
        .expect("b");
    write_material(&SeaStore::new(conn.clone(), a.id, plain.clone()), 10).await;
    write_material(&SeaStore::new(conn.clone(), b.id, old.clone()), 20).await;
    let before_a = read_material(&SeaStore::new(conn.clone(), a.id, plain.clone())).await;
    let before_b = read_material(&SeaStore::new(conn.clone(), b.id, old.clone())).await;

    let hook_a = rotated_webhook(&conn, &plain, Scope::Instance(a.id)).await;
    let hook_b = rotated_webhook(&conn, &old, Scope::Instance(b.id)).await;
    let global = webhook(&conn, &old, Scope::Global).await;
    // An expired previous secret sealed with a key long gone.
    let stale = webhook(&conn, &plain, Scope::Global).await;
    let gone = keyring(Some(&new_key()))
        .seal_text(
            "whsec_AAAA",
            &Context::webhook(stale, WebhookSecret::Previous),
        )
        .expect("seal");
    entity::webhooks::ActiveModel {
        id: Set(stale),
        previous_secret: Set(Some(gone)),
        previous_secret_expires_at: Set(Some(Utc::now() - ChronoDuration::hours(1))),
        ..Default::default()
    }
    .update(&conn)
    .await
    .expect("stale previous secret");

    let secrets_a = secrets_of(&conn, &plain, hook_a).await;
    let secrets_b = secrets_of(&conn, &old, hook_b).await;
    let secret_global = secrets_of(&conn, &old, global).await;
    let secret_stale = secrets_of(&conn, &plain, stale).await;

    // Without a current key the command refuses.
    let refused = reencrypt(&conn, &Keyring::default(), 2).await;
    assert!(matches!(refused, Err(ReencryptError::NoKey)), "{refused:?}");
    assert!(
        refused
            .err()
            .is_some_and(|e| e.to_string().contains("WAGATE_ENCRYPTION_KEY"))
    );

    // Small batches, so the walk crosses transaction boundaries.
    let rotating = Keyring::from_config(&new, &KeyList(vec![old_key.clone()])).expect("keys");
    let counts = reencrypt(&conn, &rotating, 2).await.expect("reencrypt");
    let devices = count(&counts, "wa_devices");
    assert_eq!((devices.examined, devices.resealed), (2, 2), "{devices}");
    let kv = count(&counts, "wa_kv");
    assert_eq!((kv.examined, kv.resealed, kv.current), (8, 8, 0), "{kv}");
    let hooks = count(&counts, "webhooks");
    // a: 2 values, b: 2, global: 1, stale: 1 re-sealed and 1 dropped.
    assert_eq!(
        (hooks.examined, hooks.resealed, hooks.dropped),
        (7, 6, 1),
        "{hooks}"
    );

    // A second run finds everything current.
    let again = reencrypt(&conn, &rotating, 500).await.expect("again");
    for c in &again {
        assert_eq!(c.resealed, 0, "{c}");
        assert_eq!(c.current, c.examined, "{c}");
    }

    // The new key alone reads everything; the old one alone reads nothing.
    let only_new = keyring(Some(&new));
    assert_eq!(
        read_material(&SeaStore::new(conn.clone(), a.id, only_new.clone())).await,
        before_a
    );
    assert_eq!(
        read_material(&SeaStore::new(conn.clone(), b.id, only_new.clone())).await,
        before_b
    );
    assert!(
        SeaStore::new(conn.clone(), b.id, old.clone())
            .load()
            .await
            .is_err(),
        "the old key no longer opens the device"
    );
    assert_eq!(secrets_of(&conn, &only_new, hook_a).await, secrets_a);
    assert_eq!(secrets_of(&conn, &only_new, hook_b).await, secrets_b);
    assert_eq!(secrets_of(&conn, &only_new, global).await, secret_global);
    assert_eq!(secrets_of(&conn, &only_new, stale).await, secret_stale);
    conn.close().await.ok();

    // And so does a server that has only the new key.
    let settings = settings_with(&db, |f| f.merge(("encryption_key", new)));
    let app = TestApp::spawn_scripted(db, settings, Default::default()).await;
    let r = send(app.req(
        Method::GET,
        &format!("/v1/instances/{}/webhooks/{hook_b}/secret", b.id),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["secret"], secrets_b.0.as_str());
    assert_eq!(
        r.body["previous_secret"],
        secrets_b.1.as_deref().expect("previous")
    );
    let r = send(app.req(Method::GET, &format!("/v1/webhooks/{global}/secret"))).await;
    assert_eq!(r.body["secret"], secret_global.0.as_str());
}

fn run_to_exit(mut cmd: Command) -> std::process::Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run wagate")
}

#[tokio::test]
async fn the_reencrypt_command_refuses_without_a_key_and_reads_previous_keys_from_the_environment()
{
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let (k0, k1, k2) = (new_key(), new_key(), new_key());
    let instance = wagate::instances::store::create(&conn, None)
        .await
        .expect("instance");
    let hook = webhook(&conn, &keyring(Some(&k1)), Scope::Instance(instance.id)).await;
    let secret = secrets_of(&conn, &keyring(Some(&k1)), hook).await;

    let mut cmd = wagate(&db.url);
    cmd.arg("reencrypt");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WAGATE_ENCRYPTION_KEY"), "{stderr}");

    // Previous keys as the environment gives them: comma-separated.
    let mut cmd = wagate(&db.url);
    cmd.arg("reencrypt")
        .env("WAGATE_ENCRYPTION_KEY", &k2)
        .env("WAGATE_PREVIOUS_ENCRYPTION_KEYS", format!("{k0},{k1}"));
    let out = run_to_exit(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("webhooks: 1 examined, 1 re-encrypted"),
        "{stdout}"
    );
    for key in [&k0, &k1, &k2] {
        assert!(!stdout.contains(key.as_str()), "a key in the output");
    }
    assert_eq!(secrets_of(&conn, &keyring(Some(&k2)), hook).await, secret);
    conn.close().await.ok();
}

#[tokio::test]
async fn the_server_warns_once_at_start_when_secrets_are_stored_plain() {
    let db = TestDb::new().await;
    let warnings = |running: &crate::process::Running| {
        let lines = running.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter(|l| l.contains("stored unencrypted") && l.contains("WARN"))
            .count()
    };
    let plain = start(wagate(&db.url));
    assert_eq!(warnings(&plain), 1);
    assert!(plain.terminate().success());

    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_ENCRYPTION_KEY", new_key());
    let sealed = start(cmd);
    assert_eq!(warnings(&sealed), 0);
    assert!(sealed.terminate().success());
}
