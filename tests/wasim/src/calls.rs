//! Calls and poll votes from a contact's phone: a one-to-one call offer as
//! WhatsApp's server relays it to the callee's companions, and a vote on a
//! poll encrypted with the poll's message secret, as a voter's phone does.

use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::error::{Result, SimError};
use crate::server::Shared;
use crate::session::now_secs;

/// The phone of `from` calls `to`: every online companion of `to` gets
/// the `<call><offer/></call>`. Returns the call id.
pub fn offer_call(shared: &Shared, from: &str, to: &str, video: bool) -> Result<String> {
    let world = &shared.world;
    let conns: Vec<_> = {
        let state = world.lock();
        let target = state
            .accounts
            .get(to)
            .ok_or_else(|| SimError::NotFound(format!("{to} is not on WhatsApp")))?;
        target.devices.values().filter_map(|d| d.conn).collect()
    };
    if conns.is_empty() {
        return Err(SimError::NotFound(format!(
            "no companion of {to} is online"
        )));
    }
    let call_id = format!("{:032X}", rand::random::<u128>());
    let caller = format!("{from}@s.whatsapp.net");
    for conn in conns {
        let mut offer = vec![
            NodeBuilder::new("audio")
                .attr("enc", "opus")
                .attr("rate", "16000")
                .build(),
        ];
        if video {
            offer.push(NodeBuilder::new("video").attr("enc", "vp8").build());
        }
        let stanza = NodeBuilder::new("call")
            .attr("from", format!("{from}:0@s.whatsapp.net"))
            .attr("id", format!("{:016X}", rand::random::<u64>()))
            .attr("t", now_secs().to_string())
            .attr("notify", format!("Sim {from}"))
            .children([NodeBuilder::new("offer")
                .attr("call-id", call_id.clone())
                .attr("call-creator", caller.clone())
                .children(offer)
                .build()])
            .build();
        world.send(conn, stanza);
    }
    Ok(call_id)
}

/// A vote by `voter` (a number) for `picked` on poll `poll_id`, which
/// `creator` (a number) sent with `secret`.
pub fn poll_vote(
    secret: &[u8],
    poll_id: &str,
    creator: &str,
    voter: &str,
    picked: &[&str],
) -> Result<wa::Message> {
    let hashes: Vec<Vec<u8>> = picked
        .iter()
        .map(|o| wacore::poll::compute_option_hash(o).to_vec())
        .collect();
    let creator_jid = format!("{creator}@s.whatsapp.net");
    let (payload, iv) = wacore::poll::encrypt_poll_vote_with_secret(
        &hashes,
        secret,
        poll_id,
        &creator_jid,
        &format!("{voter}@s.whatsapp.net"),
    )
    .map_err(|e| SimError::Signal(e.to_string()))?;
    Ok(wa::Message {
        poll_update_message: buffa::MessageField::some(wa::message::PollUpdateMessage {
            poll_creation_message_key: buffa::MessageField::some(wa::MessageKey {
                remote_jid: Some(creator_jid),
                from_me: Some(false),
                id: Some(poll_id.to_owned()),
                ..Default::default()
            }),
            vote: buffa::MessageField::some(wa::message::PollEncValue {
                enc_payload: Some(payload),
                enc_iv: Some(iv.to_vec()),
            }),
            sender_timestamp_ms: Some(now_secs() as i64 * 1000),
            ..Default::default()
        }),
        ..Default::default()
    })
}
