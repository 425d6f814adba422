//! App-state a number's phone made over time (mutes, archives, pins,
//! labels and their chats), kept as real patches encrypted with the
//! app-state key the phone shares with its companions: one patch per
//! collection and seeding, its snapshot MAC over the collection's LTHash,
//! so the unmodified client verifies and applies them at its next sync.

use std::collections::HashMap;

use wacore::appstate::hash::{HashState, generate_patch_mac};
use wacore::appstate::{encode_record, expand_app_state_keys};
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;
use waproto::whatsapp::sync_action_value as action;

use crate::error::{Result, SimError};
use crate::nodes::SERVER;
use crate::seed::{Seed, Seeded};
use crate::server::Shared;
use crate::session::now_secs;

/// One phone's app state: its sync key and its collections.
#[derive(Debug, Clone)]
pub struct PhoneAppState {
    pub key_id: Vec<u8>,
    pub key_data: [u8; 32],
    pub collections: HashMap<String, Collection>,
}

impl PhoneAppState {
    pub fn generate() -> Self {
        Self {
            key_id: rand::random::<[u8; 6]>().to_vec(),
            key_data: rand::random(),
            collections: HashMap::new(),
        }
    }
}

/// A collection as the server holds it: the LTHash the patches so far add
/// up to, and the encoded patches, patch `n` at version `n + 1`.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub hash: HashState,
    pub patches: Vec<Vec<u8>>,
}

/// One mutation: its collection, index (JSON array), value and the
/// action's schema version.
struct Mutation {
    collection: &'static str,
    index: Vec<String>,
    value: wa::SyncActionValue,
    version: i32,
}

fn value(now_ms: i64, fill: impl FnOnce(&mut wa::SyncActionValue)) -> wa::SyncActionValue {
    let mut v = wa::SyncActionValue {
        timestamp: Some(now_ms),
        ..Default::default()
    };
    fill(&mut v);
    v
}

/// `count` distinct mutations over `chats`: as many labels as it takes
/// (at most 20), then each chat muted, archived, pinned, then labelled
/// with one label after another, until `count` (fewer when the chats run
/// out of distinct indexes).
fn mutations(chats: &[String], count: usize) -> Vec<Mutation> {
    let now_ms = i64::try_from(now_secs() * 1000).unwrap_or(i64::MAX);
    let labels = count
        .saturating_sub(3 * chats.len())
        .div_ceil(chats.len().max(1))
        .clamp(1, 20);
    let mut out = Vec::with_capacity(count);
    for l in 0..labels.min(count) {
        out.push(Mutation {
            collection: "regular",
            index: vec!["label_edit".into(), l.to_string()],
            value: value(now_ms, |v| {
                v.label_edit_action = buffa::MessageField::some(action::LabelEditAction {
                    name: Some(format!("Label {l}")),
                    color: Some(i32::try_from(l % 20).unwrap_or(0)),
                    deleted: Some(false),
                    ..Default::default()
                });
            }),
            version: 3,
        });
    }
    if chats.is_empty() {
        return out;
    }
    let rounds = 3 + labels;
    for i in 0..chats.len() * rounds {
        if out.len() >= count {
            break;
        }
        let chat = chats[i % chats.len()].clone();
        let m = match i / chats.len() {
            0 => Mutation {
                collection: "regular_high",
                index: vec!["mute".into(), chat],
                value: value(now_ms, |v| {
                    v.mute_action = buffa::MessageField::some(action::MuteAction {
                        muted: Some(true),
                        mute_end_timestamp: Some(now_ms + 8 * 3600 * 1000),
                        ..Default::default()
                    });
                }),
                version: 2,
            },
            1 => Mutation {
                collection: "regular_low",
                index: vec!["archive".into(), chat],
                value: value(now_ms, |v| {
                    v.archive_chat_action = buffa::MessageField::some(action::ArchiveChatAction {
                        archived: Some(true),
                        ..Default::default()
                    });
                }),
                version: 3,
            },
            2 => Mutation {
                collection: "regular_low",
                index: vec!["pin_v1".into(), chat],
                value: value(now_ms, |v| {
                    v.pin_action =
                        buffa::MessageField::some(action::PinAction { pinned: Some(true) });
                }),
                version: 5,
            },
            r => Mutation {
                collection: "regular",
                index: vec!["label_jid".into(), (r - 3).to_string(), chat],
                value: value(now_ms, |v| {
                    v.label_association_action =
                        buffa::MessageField::some(action::LabelAssociationAction {
                            labeled: Some(true),
                            ..Default::default()
                        });
                }),
                version: 3,
            },
        };
        out.push(m);
    }
    out
}

/// Builds the patches of `seed`'s app-state mutations over the chats of
/// `seeded` for `phone`, adds them to its collections and tells its online
/// companions to sync. Returns how many mutations were staged.
pub fn stage(shared: &Shared, phone: &str, seed: &Seed, seeded: &Seeded) -> Result<usize> {
    let mut chats: Vec<String> = seeded
        .contacts
        .iter()
        .map(|c| format!("{c}@{SERVER}"))
        .collect();
    chats.extend(seeded.groups.iter().map(|(jid, _)| jid.clone()));
    let all = mutations(&chats, seed.app_state_mutations);
    let staged = all.len();
    let mut by_collection: HashMap<&'static str, Vec<Mutation>> = HashMap::new();
    for m in all {
        by_collection.entry(m.collection).or_default().push(m);
    }
    let world = &shared.world;
    let mut state = world.lock();
    let app = state
        .app_state
        .entry(phone.to_owned())
        .or_insert_with(PhoneAppState::generate);
    let keys = expand_app_state_keys(&app.key_data);
    let key_id = app.key_id.clone();
    let mut versions = Vec::new();
    for (name, list) in by_collection {
        let collection = app.collections.entry(name.to_owned()).or_default();
        let mut records = Vec::with_capacity(list.len());
        let mut encoded = Vec::with_capacity(list.len());
        for m in &list {
            let index = serde_json::to_vec(&m.index)
                .map_err(|e| SimError::BadRequest(format!("an app-state index: {e}")))?;
            let (mutation, _) = encode_record(
                wa::syncd_mutation::SyncdOperation::SET,
                &index,
                &m.value,
                &keys,
                &key_id,
                &rand::random(),
                m.version,
            );
            if let Some(record) = mutation.record.as_option() {
                records.push(record.clone());
            }
            encoded.push(mutation);
        }
        // Every index is new to the collection, so the LTHash only adds.
        let version = collection.patches.len() as u64 + 1;
        collection.hash.update_hash_from_records(&records);
        collection.hash.version = version;
        let mut patch = wa::SyncdPatch {
            version: buffa::MessageField::some(wa::SyncdVersion {
                version: Some(version),
            }),
            mutations: encoded,
            snapshot_mac: Some(
                collection
                    .hash
                    .generate_snapshot_mac(name, &keys.snapshot_mac),
            ),
            key_id: buffa::MessageField::some(wa::KeyId {
                id: Some(key_id.clone()),
            }),
            ..Default::default()
        };
        patch.patch_mac = Some(generate_patch_mac(&patch, name, &keys.patch_mac, version));
        collection
            .patches
            .push(waproto::codec::syncd_patch_to_vec(&patch));
        versions.push((name, version));
    }
    let conns: Vec<_> = state
        .accounts
        .get(phone)
        .map(|a| a.devices.values().filter_map(|d| d.conn).collect())
        .unwrap_or_default();
    drop(state);
    let notice = NodeBuilder::new("notification")
        .attr("type", "server_sync")
        .attr("from", SERVER)
        .attr("id", format!("sync-{}", world.next_id()))
        .attr("t", now_secs().to_string())
        .children(versions.into_iter().map(|(name, version)| {
            NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", version.to_string())
                .build()
        }))
        .build();
    for conn in conns {
        world.send(conn, notice.clone());
    }
    Ok(staged)
}
