//! The client's Signal keys as the server keeps them: uploaded one-time
//! prekeys and the signed prekey, handed out as bundles to senders.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::keys::Bundle;
use crate::nodes::{attr, bytes, child, children, result_to};
use crate::session::Session;
use crate::world::{SignedPreKey, SimEvent, State};

fn be_u32(b: Option<&[u8]>) -> u32 {
    b.map(|b| b.iter().fold(0u32, |acc, x| acc << 8 | u32::from(*x)))
        .unwrap_or(0)
}

/// `<iq xmlns="encrypt" type="set">`: a prekey upload (registration id,
/// identity, one-time keys, signed prekey).
pub fn upload(session: &mut Session, request: &Node) {
    session.reply(result_to(request).build());
    let Some((phone, device)) = session.me.clone() else {
        return;
    };
    let prekeys: Vec<(u32, Vec<u8>)> = child(request, "list")
        .map(|list| {
            children(list, "key")
                .filter_map(|k| {
                    let id = be_u32(child(k, "id").and_then(bytes));
                    child(k, "value").and_then(bytes).map(|v| (id, v.to_vec()))
                })
                .collect()
        })
        .unwrap_or_default();
    let signed = child(request, "skey").and_then(|s| {
        Some(SignedPreKey {
            id: be_u32(child(s, "id").and_then(bytes)),
            public: child(s, "value").and_then(bytes)?.to_vec(),
            signature: child(s, "signature").and_then(bytes)?.to_vec(),
        })
    });
    let registration_id = child(request, "registration")
        .and_then(bytes)
        .map(|b| be_u32(Some(b)));
    let identity = child(request, "identity")
        .and_then(bytes)
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    let share_key = {
        let world = &session.shared.world;
        let mut state = world.lock();
        let Some(d) = state
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
        else {
            return;
        };
        d.prekeys.extend(prekeys);
        if let Some(s) = signed {
            d.signed_prekey = Some(s);
        }
        if let Some(r) = registration_id {
            d.registration_id = r;
        }
        if let Some(i) = identity {
            d.identity_pub = i;
        }
        // The phone can only encrypt to the device once its keys are up.
        !std::mem::replace(&mut d.key_shared, true)
    };
    if share_key {
        let shared = session.shared.clone();
        let phone = phone.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::control::share_app_state_key(&shared, &phone, device).await {
                tracing::warn!(%phone, device, error = %e, "app-state key share failed");
            }
        });
    }
    session
        .shared
        .world
        .emit(SimEvent::PreKeysUploaded { phone, device });
}

/// `<iq xmlns="encrypt" type="get">`: prekey bundles (`<key>`) or the
/// count of one-time prekeys left (`<count>`).
pub fn fetch(state: &mut State, request: &Node) -> Node {
    if child(request, "count").is_some() {
        return result_to(request)
            .children([NodeBuilder::new("count").attr("value", "50").build()])
            .build();
    }
    let Some(key) = child(request, "key") else {
        return result_to(request).build();
    };
    let users: Vec<Node> = children(key, "user")
        .map(|u| {
            let jid = attr(u, "jid").unwrap_or_default();
            bundle_for(state, &jid).unwrap_or_else(|| {
                NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children([NodeBuilder::new("error")
                        .attr("code", "404")
                        .attr("text", "item-not-found")
                        .build()])
                    .build()
            })
        })
        .collect();
    result_to(request)
        .children([NodeBuilder::new("list").children(users).build()])
        .build()
}

/// The bundle of device `user[:device]@server`: the simulated phone's keys
/// for device 0, a companion's uploaded keys (one one-time prekey used up
/// per fetch, as on WhatsApp) otherwise.
fn bundle_for(state: &mut State, jid: &str) -> Option<Node> {
    let (user, _server) = jid.split_once('@')?;
    let (user, device) = match user.split_once(':') {
        Some((u, d)) => (u, d.parse::<u16>().ok()?),
        None => (user, 0),
    };
    let phone = state.find_user(user)?.phone.clone();
    let account = state.accounts.get_mut(&phone)?;
    if device == 0 {
        return Some(account.keys.bundle(jid.to_owned()).node());
    }
    let d = account.devices.get_mut(&device)?;
    let prekey = (!d.prekeys.is_empty()).then(|| d.prekeys.remove(0));
    let signed = d.signed_prekey.as_ref()?;
    Some(
        Bundle {
            jid: jid.to_owned(),
            registration_id: d.registration_id,
            identity: &d.identity_pub,
            prekey: prekey.as_ref().map(|(id, k)| (*id, k.as_slice())),
            signed_prekey_id: signed.id,
            signed_prekey: &signed.public,
            signature: &signed.signature,
            device_identity: d.signed_identity.as_deref(),
        }
        .node(),
    )
}
