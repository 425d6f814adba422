//! Message stanzas from a device: acknowledged as the server does, recorded
//! so a test can make the recipient deliver or read them, and opened by the
//! simulated phones they were encrypted for, so a test sees what the
//! recipient really got.

use buffa::Message as _;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::error::{Result, SimError};
use crate::nodes::{attr, bytes, child, children};
use crate::session::{Session, now_secs};
use crate::world::{Received, SentMessage, SimEvent, Stanza};

pub async fn from_device(session: &mut Session, node: &Node) {
    let id = attr(node, "id").unwrap_or_default();
    let to = attr(node, "to").unwrap_or_default();
    session.reply(
        NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.clone())
            .attr("from", to.clone())
            .attr("t", now_secs().to_string())
            .build(),
    );
    let Some((phone, device)) = session.me.clone() else {
        return;
    };
    let recipient = to.split(['@', ':']).next().unwrap_or_default().to_owned();
    session.shared.world.lock().sent.insert(
        id.clone(),
        SentMessage {
            phone: phone.clone(),
            device,
            to: recipient.clone(),
        },
    );
    session.shared.world.emit(SimEvent::MessageSent {
        phone: phone.clone(),
        id: id.clone(),
        to: recipient,
    });
    if to.ends_with("@g.us") {
        crate::group_messages::from_device(session, &phone, device, &id, node, &to).await;
        return;
    }
    for (jid, enc) in envelopes(node, &to) {
        if let Err(e) = open(session, &phone, device, &id, node, &jid, enc).await {
            tracing::warn!(%id, %jid, error = %e, "the simulated phone could not open a message");
        }
    }
}

/// The `(recipient device JID, <enc>)` pairs of a message stanza: the
/// `<participants>` fan-out, or a bare `<enc>` for the stanza's `to`.
pub fn envelopes<'a>(node: &'a Node, to: &str) -> Vec<(String, &'a Node)> {
    match child(node, "participants") {
        Some(list) => children(list, "to")
            .filter_map(|t| Some((attr(t, "jid")?, child(t, "enc")?)))
            .collect(),
        None => child(node, "enc")
            .map(|enc| vec![(to.to_owned(), enc)])
            .unwrap_or_default(),
    }
}

/// Decrypts `enc` as the simulated phone (device 0) of the account `jid`
/// names, and records the message it held. Companions and the sender's own
/// phone are not simulated readers.
async fn open(
    session: &Session,
    sender: &str,
    sender_device: u16,
    id: &str,
    stanza: &Node,
    jid: &str,
    enc: &Node,
) -> Result<()> {
    let world = &session.shared.world;
    let Some((phone, message)) = decrypt_pairwise(world, sender, sender_device, jid, enc).await?
    else {
        return Ok(());
    };
    world
        .lock()
        .received
        .entry(phone.clone())
        .or_default()
        .push(Received {
            id: id.to_owned(),
            from: sender.to_owned(),
            edit: attr(stanza, "edit"),
            group: None,
            message,
        });
    world.emit(SimEvent::MessageReceived {
        to: phone,
        from: sender.to_owned(),
        id: id.to_owned(),
    });
    Ok(())
}

/// Opens the pairwise `enc` (`pkmsg`/`msg`) device `sender:sender_device`
/// sealed for `jid`, as that account's simulated phone. None when `jid` is
/// not a simulated phone (a companion, an unknown user, the sender's own).
pub async fn decrypt_pairwise(
    world: &crate::world::World,
    sender: &str,
    sender_device: u16,
    jid: &str,
    enc: &Node,
) -> Result<Option<(String, wa::Message)>> {
    let (user, _server) = jid.split_once('@').unwrap_or((jid, ""));
    if user.split_once(':').is_some_and(|(_, d)| d != "0") {
        return Ok(None);
    }
    let user = user.split(':').next().unwrap_or_default();
    let (phone, signal, signed) = {
        let state = world.lock();
        let Some(account) = state.find_user(user) else {
            return Ok(None);
        };
        if account.phone == sender {
            return Ok(None);
        }
        let keys = &account.keys;
        let signed = crate::signal::signed_prekey_record(
            crate::keys::SIGNED_PREKEY_ID,
            &keys.signed_prekey,
            &keys.signed_prekey_signature,
        );
        (account.phone.clone(), account.signal.clone(), signed)
    };
    let kind = attr(enc, "type").unwrap_or_default();
    let sealed = bytes(enc).ok_or_else(|| SimError::Protocol("empty <enc>".into()))?;
    let padded = signal
        .lock()
        .await
        .decrypt(sender, sender_device, &kind, sealed, signed)
        .await?;
    let message = wa::Message::decode_from_slice(unpad(&padded)?)?;
    Ok(Some((phone, message)))
}

/// Strips WhatsApp's v2 padding: 1..=16 bytes, each the pad length.
pub fn unpad(padded: &[u8]) -> Result<&[u8]> {
    let pad = usize::from(*padded.last().unwrap_or(&0));
    if pad == 0 || pad > padded.len() {
        return Err(SimError::Protocol(format!("bad padding length {pad}")));
    }
    Ok(&padded[..padded.len() - pad])
}

/// Receipts, chat states, presences and calls: recorded for tests, and
/// acknowledged where the server does.
pub fn from_device_other(session: &mut Session, node: &Node) {
    if let Some((phone, _)) = &session.me {
        let world = &session.shared.world;
        world
            .lock()
            .stanzas
            .entry(phone.clone())
            .or_default()
            .push(Stanza::of(node));
        world.emit(SimEvent::StanzaSent {
            phone: phone.clone(),
            tag: node.tag.to_string(),
        });
    }
    if matches!(node.tag.as_ref(), "receipt" | "notification" | "call") {
        acknowledge(session, node);
    }
}

/// Receipts and other stanzas the server only acknowledges.
pub fn acknowledge(session: &mut Session, node: &Node) {
    let mut ack = NodeBuilder::new("ack")
        .attr("class", node.tag.to_string())
        .attr("id", attr(node, "id").unwrap_or_default());
    if let Some(to) = attr(node, "to") {
        ack = ack.attr("from", to);
    }
    if let Some(kind) = attr(node, "type") {
        ack = ack.attr("type", kind);
    }
    session.reply(ack.build());
}
