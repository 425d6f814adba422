//! The client's Signal keys as the server keeps them: uploaded one-time
//! prekeys and the signed prekey, handed out as bundles to senders.

use wacore_binary::Node;

use crate::nodes::{bytes, child, children, result_to};
use crate::session::Session;
use crate::world::{SignedPreKey, SimEvent};

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
    let registration_id = child(request, "registration").and_then(bytes).map(|b| be_u32(Some(b)));
    let identity = child(request, "identity")
        .and_then(bytes)
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    {
        let world = &session.shared.world;
        let mut state = world.lock();
        if let Some(d) = state
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
        {
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
        }
    }
    session
        .shared
        .world
        .emit(SimEvent::PreKeysUploaded { phone, device });
}
