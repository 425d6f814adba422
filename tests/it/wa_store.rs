//! Contract tests of our whatsapp-rust store: one suite of scenarios runs on
//! wacore's own `InMemoryBackend` (the oracle) and on our database store,
//! and every answer must agree. Then what only a database has to prove:
//! isolation between instances, atomic takes, wiping, cascades, restarts.

use std::sync::Arc;

use bytes::Bytes;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;
use wagate::sealing::Keyring;
use wagate::whatsapp::store::{SeaStore, wipe_device};
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};

use crate::harness::TestDb;

/// Records what a backend answers, so two backends can be compared whole.
struct Log(Vec<String>);

impl Log {
    fn say(&mut self, what: &str, answer: impl std::fmt::Debug) {
        self.0.push(format!("{what}: {answer:?}"));
    }

    fn sorted<T: std::fmt::Debug + Ord>(&mut self, what: &str, mut v: Vec<T>) {
        v.sort();
        self.say(what, v);
    }
}

fn mapping(lid: &str, phone: &str) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: 10,
        updated_at: 20,
        learning_source: "usync".into(),
    }
}

fn device_list(user: &str, devices: &[u32]) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices: devices
            .iter()
            .map(|d| DeviceInfo::new(*d, Some(1)))
            .collect(),
        timestamp: 99,
        phash: Some("2:abc".into()),
        raw_id: None,
    }
}

fn state_of(s: &HashState) -> (u64, Vec<u8>) {
    (s.version, s.hash.to_vec())
}

fn unwrap<T>(r: Result<T, whatsapp_rust::wacore::store::error::StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("store error: {e:?}"))
}

/// Every method, in an order that exercises overwrite, miss and delete.
async fn scenarios(b: &dyn Backend) -> Vec<String> {
    let mut log = Log(Vec::new());

    // --- SignalStore ---
    log.say(
        "identity missing",
        unwrap(b.load_identity("111@s.whatsapp.net").await),
    );
    unwrap(b.put_identity("111@s.whatsapp.net", [1; 32]).await);
    unwrap(b.put_identity("111@s.whatsapp.net", [2; 32]).await);
    unwrap(
        b.put_identities_batch(&[
            ("222:3@s.whatsapp.net".into(), [3; 32]),
            ("333@lid".into(), [4; 32]),
        ])
        .await,
    );
    for a in ["111@s.whatsapp.net", "222:3@s.whatsapp.net", "333@lid"] {
        log.say(a, unwrap(b.load_identity(a).await));
    }
    unwrap(b.delete_identity("333@lid").await);
    log.say("identity deleted", unwrap(b.load_identity("333@lid").await));

    log.say("session missing", unwrap(b.get_session("111.0").await));
    unwrap(b.put_session("111@s.whatsapp.net.0", b"s1").await);
    unwrap(b.put_session("111@s.whatsapp.net.0", b"s1b").await);
    unwrap(
        b.put_sessions_batch(&[
            ("444:2@s.whatsapp.net.0".into(), Bytes::from_static(b"s2")),
            ("555@lid.0".into(), Bytes::from_static(b"s3")),
        ])
        .await,
    );
    log.say(
        "session",
        unwrap(b.get_session("111@s.whatsapp.net.0").await),
    );
    log.say("has session", unwrap(b.has_session("555@lid.0").await));
    unwrap(b.delete_session("555@lid.0").await);
    log.say(
        "has deleted session",
        unwrap(b.has_session("555@lid.0").await),
    );
    for user in ["111", "222", "444", "555", "11", "999"] {
        log.say(
            &format!("signal state for {user}"),
            unwrap(b.has_signal_state_for_user(user).await),
        );
    }

    log.say("max prekey, none", unwrap(b.get_max_prekey_id().await));
    unwrap(b.store_prekey(5, b"p5", false).await);
    unwrap(
        b.store_prekeys_batch(
            &[
                (7, Bytes::from_static(b"p7")),
                (6, Bytes::from_static(b"p6")),
            ],
            true,
        )
        .await,
    );
    log.say("prekey 6", unwrap(b.load_prekey(6).await));
    log.say("prekeys", unwrap(b.load_prekeys_batch(&[7, 99, 5]).await));
    log.say("max prekey", unwrap(b.get_max_prekey_id().await));
    unwrap(b.remove_prekey(7).await);
    unwrap(b.mark_prekeys_uploaded(&[5, 7]).await);
    log.say(
        "removed prekey stays removed",
        unwrap(b.load_prekey(7).await),
    );
    log.say(
        "max prekey after removal",
        unwrap(b.get_max_prekey_id().await),
    );

    unwrap(b.store_signed_prekey(2, b"sp2").await);
    unwrap(b.store_signed_prekey(1, b"sp1").await);
    log.say("signed 1", unwrap(b.load_signed_prekey(1).await));
    log.sorted("all signed", unwrap(b.load_all_signed_prekeys().await));
    unwrap(b.remove_signed_prekey(1).await);
    log.say("signed removed", unwrap(b.load_signed_prekey(1).await));

    unwrap(b.put_sender_key("g1::a", b"k1").await);
    unwrap(
        b.put_sender_keys_batch(&[("g1::b".into(), Bytes::from_static(b"k2"))])
            .await,
    );
    log.say("sender key", unwrap(b.get_sender_key("g1::b").await));
    unwrap(b.delete_sender_key("g1::a").await);
    log.say(
        "sender key deleted",
        unwrap(b.get_sender_key("g1::a").await),
    );

    // --- AppSyncStore ---
    log.say("latest key, none", unwrap(b.get_latest_sync_key_id().await));
    let key = |d: u8| AppStateSyncKey {
        key_data: vec![d; 32],
        fingerprint: vec![d],
        timestamp: i64::from(d),
    };
    unwrap(b.set_sync_key(b"\x00\x01", key(1)).await);
    unwrap(b.set_sync_key(b"\x00\x02", key(2)).await);
    log.say(
        "sync key",
        unwrap(b.get_sync_key(b"\x00\x01").await).map(|k| (k.key_data, k.fingerprint, k.timestamp)),
    );
    log.say(
        "sync key missing",
        unwrap(b.get_sync_key(b"\xff").await).is_some(),
    );
    log.say("latest key", unwrap(b.get_latest_sync_key_id().await));
    log.say(
        "version, none",
        state_of(&unwrap(b.get_version("regular").await)),
    );
    let mut state = HashState {
        version: 7,
        hash: [9; 128],
        ..Default::default()
    };
    state.index_value_map.insert("idx".into(), vec![1, 2]);
    unwrap(b.set_version("regular", state).await);
    let back = unwrap(b.get_version("regular").await);
    log.say(
        "version",
        (state_of(&back), back.index_value_map.get("idx").cloned()),
    );
    let mac = |i: u8, v: u8| AppStateMutationMAC {
        index_mac: vec![i; 32],
        value_mac: vec![v; 32],
    };
    unwrap(
        b.put_mutation_macs("regular", 7, &[mac(1, 10), mac(2, 20)])
            .await,
    );
    unwrap(b.put_mutation_macs("regular_low", 7, &[mac(1, 30)]).await);
    unwrap(b.put_mutation_macs("regular", 8, &[mac(1, 11)]).await);
    log.say("mac", unwrap(b.get_mutation_mac("regular", &[1; 32]).await));
    let mut macs: Vec<_> = unwrap(
        b.get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
            .await,
    )
    .into_iter()
    .collect();
    macs.sort();
    log.say("macs", macs);
    unwrap(b.delete_mutation_macs("regular", &[vec![2; 32]]).await);
    log.say(
        "mac deleted",
        unwrap(b.get_mutation_mac("regular", &[2; 32]).await),
    );
    unwrap(b.clear_mutation_macs("regular").await);
    log.say(
        "cleared",
        unwrap(b.get_mutation_mac("regular", &[1; 32]).await),
    );
    log.say(
        "other collection kept",
        unwrap(b.get_mutation_mac("regular_low", &[1; 32]).await),
    );

    // --- ProtocolStore ---
    unwrap(
        b.set_sender_key_status(
            "g@g.us",
            &[("a:1@s.whatsapp.net", true), ("b:2@lid", false)],
        )
        .await,
    );
    unwrap(
        b.set_sender_key_status("g@g.us", &[("b:2@lid", true)])
            .await,
    );
    unwrap(
        b.set_sender_key_status("h@g.us", &[("a:1@s.whatsapp.net", false)])
            .await,
    );
    log.sorted("skd g", unwrap(b.get_sender_key_devices("g@g.us").await));
    unwrap(
        b.delete_sender_key_device_rows(&["a:1@s.whatsapp.net"])
            .await,
    );
    log.sorted(
        "skd g after row delete",
        unwrap(b.get_sender_key_devices("g@g.us").await),
    );
    log.sorted(
        "skd h after row delete",
        unwrap(b.get_sender_key_devices("h@g.us").await),
    );
    unwrap(b.clear_sender_key_devices("g@g.us").await);
    log.sorted(
        "skd g cleared",
        unwrap(b.get_sender_key_devices("g@g.us").await),
    );
    unwrap(
        b.set_sender_key_status("h@g.us", &[("c:3@lid", true)])
            .await,
    );
    unwrap(b.clear_all_sender_key_devices().await);
    log.sorted(
        "skd all cleared",
        unwrap(b.get_sender_key_devices("h@g.us").await),
    );

    unwrap(b.put_lid_mapping(&mapping("100@lid", "62811")).await);
    unwrap(
        b.put_lid_mappings(&[mapping("200@lid", "62822"), mapping("100@lid", "62833")])
            .await,
    );
    let entry =
        |e: Option<LidPnMappingEntry>| e.map(|e| (e.lid, e.phone_number, e.learning_source));
    log.say("lid 100", entry(unwrap(b.get_lid_mapping("100@lid").await)));
    log.say(
        "pn of moved lid",
        entry(unwrap(b.get_pn_mapping("62811").await)),
    );
    log.say("pn 62833", entry(unwrap(b.get_pn_mapping("62833").await)));
    log.sorted(
        "all mappings",
        unwrap(b.get_all_lid_mappings().await)
            .into_iter()
            .map(|e| (e.lid, e.phone_number))
            .collect(),
    );

    unwrap(b.save_base_key("a.0", "m1", b"bk").await);
    log.say(
        "same base key",
        unwrap(b.has_same_base_key("a.0", "m1", b"bk").await),
    );
    log.say(
        "other base key",
        unwrap(b.has_same_base_key("a.0", "m1", b"xx").await),
    );
    log.say(
        "no base key",
        unwrap(b.has_same_base_key("a.0", "m2", b"bk").await),
    );
    unwrap(b.delete_base_key("a.0", "m1").await);
    log.say(
        "deleted base key",
        unwrap(b.has_same_base_key("a.0", "m1", b"bk").await),
    );

    unwrap(b.update_device_list(device_list("u1", &[0, 1])).await);
    unwrap(
        b.update_device_lists(vec![device_list("u2", &[0]), device_list("u1", &[0, 5])])
            .await,
    );
    let devices = |r: Option<DeviceListRecord>| {
        r.map(|r| {
            (
                r.user,
                r.devices.iter().map(|d| d.device_id).collect::<Vec<_>>(),
                r.phash,
            )
        })
    };
    log.say("devices u1", devices(unwrap(b.get_devices("u1").await)));
    unwrap(b.delete_devices("u2").await);
    log.say(
        "devices u2 deleted",
        devices(unwrap(b.get_devices("u2").await)),
    );

    unwrap(b.put_group_metadata("g@g.us", b"meta").await);
    log.say("group", unwrap(b.get_group_metadata("g@g.us").await));
    unwrap(b.delete_group_metadata("g@g.us").await);
    log.say(
        "group deleted",
        unwrap(b.get_group_metadata("g@g.us").await),
    );

    let tc = |e: Option<TcTokenEntry>| e.map(|e| (e.token, e.token_timestamp, e.sender_timestamp));
    unwrap(
        b.put_tc_token(
            "t1",
            &TcTokenEntry {
                token: b"tok".to_vec(),
                token_timestamp: 100,
                sender_timestamp: None,
            },
        )
        .await,
    );
    unwrap(b.store_received_tc_token("t1", b"old", 50).await);
    log.say(
        "stale token ignored",
        tc(unwrap(b.get_tc_token("t1").await)),
    );
    unwrap(b.store_received_tc_token("t1", b"new", 150).await);
    unwrap(b.touch_tc_token_sender_timestamp("t1", 300).await);
    unwrap(b.touch_tc_token_sender_timestamp("t1", 200).await);
    log.say("token t1", tc(unwrap(b.get_tc_token("t1").await)));
    unwrap(b.touch_tc_token_sender_timestamp("t2", 120).await);
    log.say("sender-only t2", tc(unwrap(b.get_tc_token("t2").await)));
    unwrap(
        b.put_tc_token(
            "t3",
            &TcTokenEntry {
                token: b"x".to_vec(),
                token_timestamp: 10,
                sender_timestamp: Some(10),
            },
        )
        .await,
    );
    log.sorted("token jids", unwrap(b.get_all_tc_token_jids().await));
    log.say(
        "expired tokens",
        unwrap(b.delete_expired_tc_tokens(100, 150).await),
    );
    log.sorted(
        "token jids after expiry",
        unwrap(b.get_all_tc_token_jids().await),
    );
    unwrap(b.delete_tc_token("t1").await);
    log.say("token deleted", tc(unwrap(b.get_tc_token("t1").await)));

    unwrap(
        b.store_sent_message("c@s.whatsapp.net", "m1", b"payload")
            .await,
    );
    unwrap(
        b.store_sent_message("c@s.whatsapp.net", "m2", b"payload2")
            .await,
    );
    log.say(
        "take",
        unwrap(b.take_sent_message("c@s.whatsapp.net", "m1").await),
    );
    log.say(
        "take again",
        unwrap(b.take_sent_message("c@s.whatsapp.net", "m1").await),
    );
    log.say(
        "expire none",
        unwrap(b.delete_expired_sent_messages(0).await),
    );
    let future = chrono::Utc::now().timestamp() + 3600;
    log.say(
        "expire all",
        unwrap(b.delete_expired_sent_messages(future).await),
    );
    log.say(
        "expired gone",
        unwrap(b.take_sent_message("c@s.whatsapp.net", "m2").await),
    );

    unwrap(b.store_pending_inbound("c", "s", "i1", b"one").await);
    unwrap(
        b.store_pending_inbound_batch(&[
            PendingInboundRow {
                chat: "c",
                sender: "s",
                id: "i2",
                message: b"two",
            },
            PendingInboundRow {
                chat: "c",
                sender: "s",
                id: "i3",
                message: b"three",
            },
            // A key twice in one batch: the last one stands (PostgreSQL
            // refuses one upsert naming a row twice).
            PendingInboundRow {
                chat: "c",
                sender: "s",
                id: "i2",
                message: b"two again",
            },
        ])
        .await,
    );
    log.say(
        "pending",
        unwrap(b.get_pending_inbound("c", "s", "i2").await),
    );
    unwrap(b.delete_pending_inbound("c", "s", "i1").await);
    unwrap(
        b.delete_pending_inbound_batch(&[PendingInboundKey {
            chat: "c",
            sender: "s",
            id: "i2",
        }])
        .await,
    );
    log.say(
        "pending deleted",
        unwrap(b.get_pending_inbound("c", "s", "i1").await),
    );
    log.say(
        "pending expired",
        unwrap(b.delete_expired_pending_inbound(future).await),
    );
    log.say(
        "pending after expiry",
        unwrap(b.get_pending_inbound("c", "s", "i3").await),
    );

    // --- MsgSecretStore ---
    unwrap(b.put_msg_secret("chat", "me", "m1", &[7; 32]).await);
    let secret = |msg: &str, s: u8, expires_at: i64, message_ts: i64| MsgSecretEntry {
        chat: Arc::from("chat"),
        sender: Arc::from("them"),
        msg_id: Arc::from(msg),
        secret: [s; 32],
        expires_at,
        message_ts,
    };
    log.say(
        "put secrets",
        unwrap(
            b.put_msg_secrets(vec![
                secret("m2", 1, 100, 5),
                secret("m3", 2, 0, 6),
                secret("m2", 3, 200, 4),
            ])
            .await,
        ),
    );
    log.say(
        "secret m1",
        unwrap(b.get_msg_secret("chat", "me", "m1").await),
    );
    log.say(
        "secret m2",
        unwrap(b.get_msg_secret_with_ts("chat", "them", "m2").await),
    );
    log.say(
        "secret missing",
        unwrap(b.get_msg_secret("chat", "them", "zz").await),
    );
    log.say(
        "expired secrets",
        unwrap(b.delete_expired_msg_secrets(150).await),
    );
    log.say(
        "m2 kept (expires 200)",
        unwrap(b.get_msg_secret("chat", "them", "m2").await).is_some(),
    );
    log.say(
        "expired secrets later",
        unwrap(b.delete_expired_msg_secrets(250).await),
    );
    log.say(
        "m2 gone",
        unwrap(b.get_msg_secret("chat", "them", "m2").await).is_some(),
    );
    log.say(
        "m3 never expires",
        unwrap(b.get_msg_secret("chat", "them", "m3").await).is_some(),
    );

    // --- DeviceStore ---
    log.say("device exists, before", unwrap(b.exists().await));
    unwrap(b.create().await);
    log.say("device exists", unwrap(b.exists().await));
    let mut device = unwrap(b.load().await).expect("a device after create");
    device.push_name = "Sales desk".into();
    unwrap(b.save(&device).await);
    let back = unwrap(b.load().await).expect("device");
    log.say("push name", back.push_name.clone());
    log.say(
        "same keys",
        back.identity_key.public_key.public_key_bytes()
            == device.identity_key.public_key.public_key_bytes(),
    );
    log.0
}

async fn instance(db: &sea_orm::DatabaseConnection) -> Uuid {
    wagate::instances::store::create(db, None)
        .await
        .expect("instance")
        .id
}

#[tokio::test]
async fn our_store_answers_like_the_reference() {
    let oracle = scenarios(&InMemoryBackend::new()).await;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let ours = scenarios(&SeaStore::new(
        db.clone(),
        instance(&db).await,
        Keyring::default(),
    ))
    .await;
    assert!(
        oracle.len() > 80,
        "the suite exercises the traits: {}",
        oracle.len()
    );
    for (i, (want, got)) in oracle.iter().zip(&ours).enumerate() {
        assert_eq!(got, want, "step {i}");
    }
    assert_eq!(ours.len(), oracle.len());
}

/// The same answers with every value sealed at rest.
#[tokio::test]
async fn our_sealed_store_answers_like_the_reference() {
    let oracle = scenarios(&InMemoryBackend::new()).await;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let keyring = Keyring::new(Some(&[7; 32]), &[]).expect("keyring");
    let ours = scenarios(&SeaStore::new(db.clone(), instance(&db).await, keyring)).await;
    assert_eq!(ours, oracle);
}

#[tokio::test]
async fn instances_never_see_each_others_rows() {
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let (a_id, b_id) = (instance(&db).await, instance(&db).await);
    let (a, b) = (
        SeaStore::new(db.clone(), a_id, Keyring::default()),
        SeaStore::new(db.clone(), b_id, Keyring::default()),
    );
    use whatsapp_rust::wacore::store::traits::{DeviceStore, ProtocolStore, SignalStore};
    a.put_identity("111@s.whatsapp.net", [1; 32])
        .await
        .expect("put");
    a.store_prekey(9, b"p9", true).await.expect("prekey");
    a.create().await.expect("create");
    a.put_lid_mapping(&mapping("1@lid", "6281"))
        .await
        .expect("map");
    assert_eq!(
        b.load_identity("111@s.whatsapp.net").await.expect("load"),
        None
    );
    assert_eq!(b.get_max_prekey_id().await.expect("max"), 0);
    assert!(!b.exists().await.expect("exists"));
    assert!(b.get_pn_mapping("6281").await.expect("pn").is_none());

    b.put_identity("111@s.whatsapp.net", [2; 32])
        .await
        .expect("put");
    wipe_device(&db, a_id).await.expect("wipe");
    assert_eq!(
        a.load_identity("111@s.whatsapp.net").await.expect("load"),
        None
    );
    assert!(!a.exists().await.expect("exists"));
    assert_eq!(
        b.load_identity("111@s.whatsapp.net").await.expect("load"),
        Some([2; 32]),
        "wiping one instance leaves the other"
    );
}

#[tokio::test]
async fn a_sent_message_is_taken_once_under_concurrency() {
    use whatsapp_rust::wacore::store::traits::ProtocolStore;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let store = SeaStore::new(db.clone(), instance(&db).await, Keyring::default());
    for round in 0..5 {
        let id = format!("m{round}");
        store
            .store_sent_message("c@s.whatsapp.net", &id, b"once")
            .await
            .expect("store");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (store, id) = (store.clone(), id.clone());
            tasks.spawn(async move { store.take_sent_message("c@s.whatsapp.net", &id).await });
        }
        let mut got = 0;
        while let Some(r) = tasks.join_next().await {
            if r.expect("task").expect("take").is_some() {
                got += 1;
            }
        }
        assert_eq!(got, 1, "round {round}: exactly one taker");
    }
}

#[tokio::test]
async fn deleting_an_instance_deletes_its_keys_and_devices_survive_restarts() {
    use whatsapp_rust::wacore::store::traits::{DeviceStore, SignalStore};
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let id = instance(&db).await;
    let store = SeaStore::new(db.clone(), id, Keyring::default());
    store.create().await.expect("create");
    store.put_session("a.0", b"s").await.expect("session");
    let before = serde_json::to_string(&store.load().await.expect("load")).expect("json");
    db.close().await.ok();

    // A new pool, as after a restart.
    let db = test_db.connect().await;
    let store = SeaStore::new(db.clone(), id, Keyring::default());
    let after = serde_json::to_string(&store.load().await.expect("load")).expect("json");
    assert_eq!(after, before, "the device reads back identically");

    entity::instances::Entity::delete_by_id(id)
        .exec(&db)
        .await
        .expect("delete");
    let left = entity::wa_kv::Entity::find()
        .filter(entity::wa_kv::Column::InstanceId.eq(id))
        .count(&db)
        .await
        .expect("count");
    assert_eq!(left, 0);
    assert!(!store.exists().await.expect("exists"));
}

#[tokio::test]
async fn a_person_named_by_lid_gets_their_number_from_the_store() {
    use wagate::engine::{EngineEvent, Party, ReceiptKind};
    use whatsapp_rust::wacore::store::traits::ProtocolStore;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let store = SeaStore::new(db.clone(), instance(&db).await, Keyring::default());
    store
        .put_lid_mapping(&mapping("98765432101234", "6281299990000"))
        .await
        .expect("map");
    let mut event = EngineEvent::Receipt {
        message_ids: vec!["3EB0".into()],
        kind: ReceiptKind::Read,
        from: Party {
            jid: "98765432101234@lid".into(),
            phone_number: None,
            lid: Some("98765432101234@lid".into()),
        },
    };
    wagate::whatsapp::engine::complete_parties(&store, &mut event).await;
    match event {
        EngineEvent::Receipt { from, .. } => {
            assert_eq!(from.phone_number.as_deref(), Some("6281299990000"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn prekeys_remember_whether_they_were_uploaded() {
    use whatsapp_rust::wacore::store::traits::SignalStore;
    let test_db = TestDb::new().await;
    let db = test_db.connect().await;
    let id = instance(&db).await;
    let store = SeaStore::new(db.clone(), id, Keyring::default());
    store.store_prekey(1, b"a", false).await.expect("store");
    store.store_prekey(2, b"b", false).await.expect("store");
    store.mark_prekeys_uploaded(&[2, 3]).await.expect("mark");
    let flags: Vec<(String, bool)> = entity::wa_kv::Entity::find()
        .filter(entity::wa_kv::Column::InstanceId.eq(id))
        .filter(entity::wa_kv::Column::Space.eq("prekey"))
        .order_by_asc(entity::wa_kv::Column::Key)
        .all(&db)
        .await
        .expect("rows")
        .into_iter()
        .map(|r| (r.key, r.flag))
        .collect();
    assert_eq!(
        flags,
        [("1".to_owned(), false), ("2".to_owned(), true)],
        "no row for 3 appears"
    );
}
