//! Votes on the polls an instance sent: opened with the poll's secret (kept
//! in its sealed body), stored as each voter's latest choice, and reported
//! with the tally of every vote so far.

use chrono::Utc;
use entity::{instances, messages, poll_votes};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use super::bodies;
use super::tracking::{party, received_event};
use crate::engine::{Body, EncryptedVote, Inbound};
use crate::sealing::Keyring;
use crate::webhooks::EventType;

/// A user JID without its device part (`6281:3@s.whatsapp.net` ->
/// `6281@s.whatsapp.net`).
pub fn without_device(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{user}@{server}")
        }
        None => jid.to_owned(),
    }
}

/// Records vote `m` on poll `poll_id` and returns its event: a
/// `message.poll_vote` with the tally, or, for a poll this instance did not
/// send (or a vote that does not open), a `message.received` of kind
/// `poll_vote`.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    keyring: &Keyring,
    instance_id: Uuid,
    m: &Inbound,
    poll_id: &str,
    vote: &EncryptedVote,
) -> Result<(EventType, Value), DbErr> {
    let poll = messages::Entity::find()
        .filter(messages::Column::InstanceId.eq(instance_id))
        .filter(messages::Column::WaMessageId.eq(poll_id))
        .one(conn)
        .await?;
    let own = instances::Entity::find_by_id(instance_id)
        .one(conn)
        .await?
        .and_then(|i| i.jid)
        .map(|j| without_device(&j));
    let body = poll.and_then(|p| bodies::open(keyring, bodies::SENT, p.id, p.body.as_deref()));
    let (Some(own), Some(Body::Poll { options, .. }), Some(secret)) =
        (own, body.clone(), body.as_ref().and_then(Body::poll_secret))
    else {
        return Ok(received_event(m));
    };
    // The voter encrypted under the address they knew themselves by: their
    // number, or their LID.
    let voters = [
        Some(m.from.jid.clone()),
        m.from
            .phone_number
            .as_ref()
            .map(|n| format!("{n}@s.whatsapp.net")),
        m.from.lid.clone(),
    ];
    let picked = voters.iter().flatten().find_map(|voter| {
        crate::whatsapp::content::outgoing::open_vote(
            vote,
            &secret,
            poll_id,
            &own,
            &without_device(voter),
            &options,
        )
        .ok()
    });
    let Some(picked) = picked else {
        tracing::warn!(poll_id, "a poll vote did not open with the poll's secret");
        return Ok(received_event(m));
    };
    store(conn, instance_id, poll_id, m, &picked).await?;
    let tally = tally(conn, instance_id, poll_id, &options).await?;
    let data = json!({
        "message_id": poll_id,
        "vote_id": m.message_id,
        "chat": m.chat,
        "voter": party(&m.from),
        "selected_options": picked,
        "tally": tally,
        "timestamp": m.timestamp,
    });
    Ok((EventType::MessagePollVote, data))
}

/// Replaces the voter's earlier vote on the poll, if any.
async fn store<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    poll_id: &str,
    m: &Inbound,
    picked: &[String],
) -> Result<(), DbErr> {
    use poll_votes::{ActiveModel, Column, Entity};
    Entity::delete_many()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::PollMessageId.eq(poll_id))
        .filter(Column::VoterJid.eq(m.from.jid.as_str()))
        .exec(conn)
        .await?;
    let options = serde_json::to_string(picked).map_err(|e| DbErr::Custom(e.to_string()))?;
    Entity::insert(ActiveModel {
        id: Set(Uuid::now_v7()),
        instance_id: Set(instance_id),
        poll_message_id: Set(poll_id.to_owned()),
        voter_jid: Set(m.from.jid.clone()),
        voter_phone_number: Set(m.from.phone_number.clone()),
        voter_lid: Set(m.from.lid.clone()),
        options: Set(options),
        voted_at: Set(Utc::now()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Every option with its votes and voters, in the poll's order.
async fn tally<C: ConnectionTrait>(
    conn: &C,
    instance_id: Uuid,
    poll_id: &str,
    options: &[String],
) -> Result<Value, DbErr> {
    use poll_votes::{Column, Entity};
    let votes = Entity::find()
        .filter(Column::InstanceId.eq(instance_id))
        .filter(Column::PollMessageId.eq(poll_id))
        .order_by_asc(Column::Id)
        .all(conn)
        .await?;
    let rows: Vec<Value> = options
        .iter()
        .map(|option| {
            let voters: Vec<Value> = votes
                .iter()
                .filter(|v| {
                    serde_json::from_str::<Vec<String>>(&v.options)
                        .is_ok_and(|picked| picked.contains(option))
                })
                .map(|v| {
                    json!({
                        "jid": v.voter_jid,
                        "phone_number": v.voter_phone_number,
                        "lid": v.voter_lid,
                    })
                })
                .collect();
            json!({ "name": option, "votes": voters.len(), "voters": voters })
        })
        .collect();
    Ok(Value::Array(rows))
}
