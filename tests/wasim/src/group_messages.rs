//! Group messages with Signal sender keys, both ways: a device's group
//! message (its sender key distributed pairwise in `<participants>`, the
//! content in one `skmsg`) opened by every simulated member, and a
//! simulated member's group message (its sender key pairwise, then the
//! `skmsg`) sent to the members' companions; and members' group receipts.

use buffa::Message as _;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::error::{Result, SimError};
use crate::groups::{GROUP_SERVER, user_of};
use crate::messages::{decrypt_pairwise, envelopes, unpad};
use crate::nodes::{SERVER, attr, bytes};
use crate::server::Shared;
use crate::session::{Session, now_secs};
use crate::world::{Received, SimEvent};

/// The sender-key name of a sending device: `phone:device`.
fn sender_name(phone: &str, device: u16) -> String {
    format!("{phone}:{device}")
}

/// A group message stanza from device `phone:device` to `to` (`…@g.us`):
/// every member's phone takes in the sender key it was given, then opens
/// the `skmsg`, and what it read is recorded as received.
pub async fn from_device(
    session: &Session,
    phone: &str,
    device: u16,
    id: &str,
    node: &Node,
    to: &str,
) {
    let world = &session.shared.world;
    let group = format!("{}@{GROUP_SERVER}", user_of(to));
    let sender = sender_name(phone, device);
    for (jid, enc) in envelopes(node, to) {
        let opened = decrypt_pairwise(world, phone, device, &jid, enc).await;
        let (member, message) = match opened {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(%id, %jid, error = %e, "a member could not open its sender key");
                continue;
            }
        };
        let Some(skdm) = message
            .sender_key_distribution_message
            .as_option()
            .and_then(|d| d.axolotl_sender_key_distribution_message.clone())
        else {
            continue;
        };
        let signal = world.lock().accounts.get(&member).map(|a| a.signal.clone());
        if let Some(signal) = signal
            && let Err(e) = signal
                .lock()
                .await
                .accept_sender_key(&group, &sender, &skdm)
                .await
        {
            tracing::warn!(%id, %member, error = %e, "a member could not take in a sender key");
        }
    }
    let Some(sealed) = node
        .children()
        .unwrap_or_default()
        .iter()
        .find(|c| c.tag == "enc" && attr(c, "type").as_deref() == Some("skmsg"))
        .and_then(bytes)
        .map(<[u8]>::to_vec)
    else {
        return;
    };
    let readers: Vec<(String, _)> = {
        let state = world.lock();
        let members = state
            .groups
            .get(user_of(to))
            .map(|g| g.members.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        members
            .into_iter()
            .filter(|m| m != phone)
            .filter_map(|m| state.accounts.get(&m).map(|a| (m, a.signal.clone())))
            .collect()
    };
    for (member, signal) in readers {
        let opened = signal
            .lock()
            .await
            .open_group(&group, &sender, &sealed)
            .await;
        let message =
            opened.and_then(|padded| Ok(wa::Message::decode_from_slice(unpad(&padded)?)?));
        match message {
            Ok(message) => {
                world
                    .lock()
                    .received
                    .entry(member.clone())
                    .or_default()
                    .push(Received {
                        id: id.to_owned(),
                        from: phone.to_owned(),
                        edit: attr(node, "edit"),
                        group: Some(group.clone()),
                        message,
                    });
                world.emit(SimEvent::MessageReceived {
                    to: member,
                    from: phone.to_owned(),
                    id: id.to_owned(),
                });
            }
            Err(e) => {
                tracing::warn!(%id, %member, error = %e, "a member could not open a group message");
            }
        }
    }
}

fn padded(message: &wa::Message) -> Vec<u8> {
    let mut plaintext = buffa::Message::encode_to_vec(message);
    // WhatsApp pads plaintexts with 1..=16 bytes, each the pad length.
    let pad = (rand::random::<u8>() & 0x0f) + 1;
    plaintext.resize(plaintext.len() + usize::from(pad), pad);
    plaintext
}

/// The phone of member `from` sends `message` to `group`: each online
/// companion of the other members gets the sender key pairwise and the
/// content as a `skmsg`, in one stanza. Returns the message id.
pub async fn member_sends(
    shared: &Shared,
    from: &str,
    group: &str,
    message: &wa::Message,
) -> Result<String> {
    let world = &shared.world;
    let id = user_of(group).to_owned();
    let group = format!("{id}@{GROUP_SERVER}");
    let (signal, lid, targets) = {
        let mut state = world.lock();
        let members: Vec<String> = state
            .groups
            .get(&id)
            .ok_or_else(|| SimError::NotFound(format!("no group {group}")))?
            .members
            .keys()
            .cloned()
            .collect();
        if !members.iter().any(|m| m == from) {
            return Err(SimError::BadRequest(format!("{from} is not in {group}")));
        }
        let account = state
            .accounts
            .get(from)
            .ok_or_else(|| SimError::NotFound(format!("{from} is not on WhatsApp")))?;
        let (signal, lid) = (account.signal.clone(), account.lid.clone());
        let mut targets = Vec::new();
        for member in members.iter().filter(|m| *m != from) {
            let Some(account) = state.accounts.get_mut(member) else {
                continue;
            };
            for (n, d) in account.devices.iter_mut() {
                let Some(conn) = d.conn else { continue };
                let prekey = (!d.prekeys.is_empty()).then(|| d.prekeys.remove(0));
                targets.push((member.clone(), *n, d.clone(), prekey, conn));
            }
        }
        (signal, lid, targets)
    };
    if targets.is_empty() {
        return Err(SimError::NotFound(format!(
            "no companion of a member of {group} is online"
        )));
    }
    let me = sender_name(from, 0);
    let mut signal = signal.lock().await;
    let skdm = signal.own_sender_key(&group, &me).await?;
    let distribution = wa::Message {
        sender_key_distribution_message: buffa::MessageField::some(
            wa::message::SenderKeyDistributionMessage {
                group_id: Some(group.clone()),
                axolotl_sender_key_distribution_message: Some(skdm),
            },
        ),
        ..Default::default()
    };
    let distribution = padded(&distribution);
    let sealed = signal.seal_group(&group, &me, &padded(message)).await?;
    let message_id = format!("3EB0{:016X}", rand::random::<u64>());
    let kind = if message.conversation.is_some() || message.extended_text_message.is_set() {
        "text"
    } else {
        "media"
    };
    for (member, device_id, device, prekey, conn) in targets {
        let (enc_kind, pairwise) = signal
            .encrypt(&member, device_id, &device, prekey, &distribution)
            .await?;
        let stanza = NodeBuilder::new("message")
            .attr("from", group.clone())
            .attr("participant", format!("{from}@{SERVER}"))
            .attr("participant_lid", format!("{lid}@lid"))
            .attr("addressing_mode", "pn")
            .attr("id", message_id.clone())
            .attr("type", kind)
            .attr("t", now_secs().to_string())
            .attr("notify", format!("Sim {from}"))
            .children([
                NodeBuilder::new("enc")
                    .attr("v", "2")
                    .attr("type", enc_kind)
                    .bytes(pairwise)
                    .build(),
                NodeBuilder::new("enc")
                    .attr("v", "2")
                    .attr("type", "skmsg")
                    .bytes(sealed.clone())
                    .build(),
            ])
            .build();
        crate::offline::queue(&mut world.lock(), &member, device_id, &message_id, &stanza);
        world.send(conn, stanza);
    }
    Ok(message_id)
}

/// Member `member` reports the group message `id` delivered (None) or
/// `read`: a receipt from the group naming the member as participant.
pub fn member_receipt(shared: &Shared, id: &str, member: &str, kind: Option<&str>) -> Result<()> {
    let world = &shared.world;
    let state = world.lock();
    let sent = state
        .sent
        .get(id)
        .cloned()
        .ok_or_else(|| SimError::NotFound(format!("no message {id}")))?;
    let conn = state
        .accounts
        .get(&sent.phone)
        .and_then(|a| a.devices.get(&sent.device))
        .and_then(|d| d.conn)
        .ok_or_else(|| SimError::NotFound(format!("{}:{} is offline", sent.phone, sent.device)))?;
    drop(state);
    let mut node = NodeBuilder::new("receipt")
        .attr("id", id)
        .attr("from", format!("{}@{GROUP_SERVER}", sent.to))
        .attr("participant", format!("{member}@{SERVER}"))
        .attr("t", now_secs().to_string());
    if let Some(kind) = kind {
        node = node.attr("type", kind);
    }
    world.send(conn, node.build());
    Ok(())
}
