//! whatsapp-rust events in the gateway's words. Pure: no I/O, no state but
//! what the caller passes in.

use whatsapp_rust::Jid;
use whatsapp_rust::prelude::MessageExt;
use whatsapp_rust::types::events::{Event, InboundMessage};
use whatsapp_rust::types::presence::ReceiptType;

use crate::engine::{Content, EngineEvent, Inbound, Party, ReceiptKind, ReceivedMedia};

/// E.164 digits of a phone-number JID; `None` for LIDs and groups.
pub fn phone_of(jid: &Jid) -> Option<String> {
    jid.is_pn().then(|| jid.user.to_string())
}

/// The JID without its device part, as people and the API use it.
pub fn bare(jid: &Jid) -> String {
    jid.to_non_ad_string()
}

/// A person from the address WhatsApp used and its alternate (a LID's
/// phone number, or a number's LID), when the server sent one.
pub fn party(jid: &Jid, alt: Option<&Jid>) -> Party {
    let lid = [Some(jid), alt]
        .into_iter()
        .flatten()
        .find(|j| j.is_lid())
        .map(bare);
    let phone_number = phone_of(jid).or_else(|| alt.and_then(phone_of));
    Party {
        jid: bare(jid),
        phone_number,
        lid,
    }
}

/// Translates a batch of inbound messages. Our own (sent from the phone or
/// another linked device) come as `from_me`, but only what a person sends
/// and changes (reactions, edits, deletions): votes and protocol traffic
/// between our devices (key shares, history sync) are left out.
pub fn received(messages: &[InboundMessage]) -> Vec<Inbound> {
    messages
        .iter()
        .filter_map(|m| {
            let info = &m.info;
            let mut content = super::content::content_of(m.message.get_base_message());
            if info.source.is_from_me
                && matches!(content, Content::PollVote { .. } | Content::Unknown { .. })
            {
                return None;
            }
            if let Content::Media(ReceivedMedia {
                reference: Some(r), ..
            }) = &mut content
            {
                // The re-upload request names the message as WhatsApp keyed it.
                r.message_id = info.id.clone();
                r.chat = info.source.chat.to_string();
                r.sender = info.source.sender.to_string();
                r.from_me = info.source.is_from_me;
            }
            Some(Inbound {
                message_id: info.id.clone(),
                from: party(&info.source.sender, info.source.sender_alt.as_ref()),
                chat: bare(&info.source.chat),
                chat_subject: None,
                timestamp: info.timestamp,
                content,
                from_me: info.source.is_from_me,
            })
        })
        .collect()
}

/// Translates one event into zero or more gateway events. `own_pn` is the
/// device's phone-number JID when known; `qr_attempt` numbers a QR code
/// within the current pairing.
pub fn translate_all(event: &Event, own_pn: Option<&Jid>, qr_attempt: u32) -> Vec<EngineEvent> {
    match event {
        // The durability hook committed these before the client announced
        // them (`super::durable`).
        Event::Messages(_) => Vec::new(),
        other => translate(other, own_pn, qr_attempt).into_iter().collect(),
    }
}

/// Translates one event. `own_pn` is the device's phone-number JID when
/// known; `qr_attempt` numbers a QR code within the current pairing.
pub fn translate(event: &Event, own_pn: Option<&Jid>, qr_attempt: u32) -> Option<EngineEvent> {
    Some(match event {
        Event::PairingQrCode(qr) => EngineEvent::Qr {
            code: qr.code.clone(),
            valid_for: qr.timeout,
            attempt: qr_attempt,
        },
        Event::PairingQrCodesExhausted(_) => EngineEvent::QrExhausted,
        Event::PairSuccess(p) => EngineEvent::Paired {
            jid: bare(&p.id),
            lid: Some(bare(&p.lid)).filter(|l| !l.is_empty()),
            phone_number: phone_of(&p.id),
        },
        Event::PairError(p) => EngineEvent::PairError {
            reason: p.error.clone(),
        },
        Event::Connected(_) => EngineEvent::Connected {
            jid: own_pn.map(bare),
            phone_number: own_pn.and_then(phone_of),
        },
        Event::Disconnected(d) => EngineEvent::Disconnected {
            reason: d.reason.to_string(),
        },
        Event::LoggedOut(l) => EngineEvent::LoggedOut {
            reason: if l.on_connect {
                format!("unlinked: the server refused the session ({:?})", l.reason)
            } else {
                format!("unlinked ({:?})", l.reason)
            },
        },
        Event::StreamReplaced(_) => EngineEvent::StreamReplaced,
        Event::TemporaryBan(b) => EngineEvent::TemporaryBan {
            reason: b.code.to_string(),
            expires_in: b.expire.to_std().unwrap_or_default(),
        },
        Event::ConnectFailure(f) => EngineEvent::ConnectFailure {
            reason: match &f.message {
                Some(m) => format!("{:?}: {m}", f.reason),
                None => format!("{:?}", f.reason),
            },
        },
        Event::ClientOutdated(_) => EngineEvent::ConnectFailure {
            reason: "WhatsApp considers this client version outdated".into(),
        },
        Event::ServerAck(ack) => EngineEvent::ServerAck {
            message_id: ack.id.clone(),
            error: ack.error.clone(),
        },
        Event::Receipt(r) => EngineEvent::Receipt {
            message_ids: r.message_ids.clone(),
            kind: match r.r#type {
                ReceiptType::Delivered => ReceiptKind::Delivered,
                ReceiptType::Read => ReceiptKind::Read,
                ReceiptType::Played => ReceiptKind::Played,
                _ => return None,
            },
            from: party(&r.source.sender, r.source.sender_alt.as_ref()),
        },
        Event::IncomingCall(call) => return incoming_call(call),
        _ => return None,
    })
}

/// A one-to-one call offer; other call signalling (and offers replayed
/// from the offline queue, which WhatsApp reports as missed) is not a call
/// to answer.
fn incoming_call(call: &whatsapp_rust::types::call::IncomingCall) -> Option<EngineEvent> {
    use whatsapp_rust::types::call::CallAction;
    let CallAction::Offer {
        call_id,
        call_creator,
        caller_pn,
        is_video,
        group_jid: None,
        ..
    } = &call.action
    else {
        return None;
    };
    if call.offline {
        return None;
    }
    Some(EngineEvent::Call(crate::engine::IncomingCall {
        call_id: call_id.clone(),
        from: party(call_creator, caller_pn.as_ref()),
        from_device: call.from.to_string(),
        creator_jid: call_creator.to_string(),
        video: *is_video,
        offered_at: call.timestamp,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use whatsapp_rust::types::events::{
        ConnectFailureReason, Connected, Disconnected, LoggedOut, PairSuccess, PairingQrCode,
        PairingQrCodesExhausted, StreamReplaced, TempBanReason, TemporaryBan,
    };
    use whatsapp_rust::wacore::net::DisconnectReason;

    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().expect("jid")
    }

    #[test]
    fn pairing_events() {
        let qr = Event::PairingQrCode(
            PairingQrCode::builder()
                .code("2@a,b,c,d,1".into())
                .timeout(Duration::from_secs(60))
                .build(),
        );
        assert_eq!(
            translate(&qr, None, 3),
            Some(EngineEvent::Qr {
                code: "2@a,b,c,d,1".into(),
                valid_for: Duration::from_secs(60),
                attempt: 3,
            })
        );
        let exhausted = Event::PairingQrCodesExhausted(
            PairingQrCodesExhausted::builder()
                .disconnected(true)
                .build(),
        );
        assert_eq!(
            translate(&exhausted, None, 0),
            Some(EngineEvent::QrExhausted)
        );

        let paired = Event::PairSuccess(
            PairSuccess::builder()
                .id(jid("6281234567890:12@s.whatsapp.net"))
                .lid(jid("98765432101234:12@lid"))
                .business_name(String::new())
                .platform("android".into())
                .build(),
        );
        assert_eq!(
            translate(&paired, None, 0),
            Some(EngineEvent::Paired {
                jid: "6281234567890@s.whatsapp.net".into(),
                lid: Some("98765432101234@lid".into()),
                phone_number: Some("6281234567890".into()),
            })
        );
    }

    #[test]
    fn connection_events() {
        let me = jid("6281234567890:3@s.whatsapp.net");
        let connected = Event::Connected(Connected::builder().build());
        assert_eq!(
            translate(&connected, Some(&me), 0),
            Some(EngineEvent::Connected {
                jid: Some("6281234567890@s.whatsapp.net".into()),
                phone_number: Some("6281234567890".into()),
            })
        );
        let lost = Event::Disconnected(
            Disconnected::builder()
                .reason(DisconnectReason::ReadError("reset".into()))
                .build(),
        );
        assert_eq!(
            translate(&lost, None, 0),
            Some(EngineEvent::Disconnected {
                reason: "read error: reset".into()
            })
        );
        let out = Event::LoggedOut(
            LoggedOut::builder()
                .on_connect(false)
                .reason(ConnectFailureReason::LoggedOut)
                .build(),
        );
        assert!(matches!(
            translate(&out, None, 0),
            Some(EngineEvent::LoggedOut { .. })
        ));
        assert_eq!(
            translate(
                &Event::StreamReplaced(StreamReplaced::builder().build()),
                None,
                0
            ),
            Some(EngineEvent::StreamReplaced)
        );
        let ban = Event::TemporaryBan(
            TemporaryBan::builder()
                .code(TempBanReason::SentToTooManyPeople)
                .expire(whatsapp_rust::chrono::Duration::seconds(3600))
                .build(),
        );
        match translate(&ban, None, 0) {
            Some(EngineEvent::TemporaryBan { expires_in, .. }) => {
                assert_eq!(expires_in, Duration::from_secs(3600))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn receipts_name_both_addresses() {
        use whatsapp_rust::types::events::{Receipt, ServerAck};
        use whatsapp_rust::types::message::MessageSource;
        let source = MessageSource {
            chat: jid("98765432101234@lid"),
            sender: jid("98765432101234@lid"),
            sender_alt: Some(jid("6281299990000@s.whatsapp.net")),
            ..Default::default()
        };
        let read = Event::Receipt(
            Receipt::builder()
                .source(source.clone())
                .message_ids(vec!["3EB0A".into(), "3EB0B".into()])
                .timestamp(whatsapp_rust::chrono::Utc::now())
                .r#type(ReceiptType::Read)
                .offline(false)
                .build(),
        );
        assert_eq!(
            translate(&read, None, 0),
            Some(EngineEvent::Receipt {
                message_ids: vec!["3EB0A".into(), "3EB0B".into()],
                kind: ReceiptKind::Read,
                from: Party {
                    jid: "98765432101234@lid".into(),
                    phone_number: Some("6281299990000".into()),
                    lid: Some("98765432101234@lid".into()),
                },
            })
        );
        let retry = Event::Receipt(
            Receipt::builder()
                .source(source)
                .message_ids(vec!["3EB0A".into()])
                .timestamp(whatsapp_rust::chrono::Utc::now())
                .r#type(ReceiptType::Retry)
                .offline(false)
                .build(),
        );
        assert_eq!(translate(&retry, None, 0), None);
        let ack = Event::ServerAck(ServerAck::builder().id("3EB0A".into()).build());
        assert_eq!(
            translate(&ack, None, 0),
            Some(EngineEvent::ServerAck {
                message_id: "3EB0A".into(),
                error: None
            })
        );
    }

    #[test]
    fn a_lid_is_not_a_phone_number() {
        assert_eq!(phone_of(&jid("98765432101234@lid")), None);
        assert_eq!(
            phone_of(&jid("6281234567890@s.whatsapp.net")).as_deref(),
            Some("6281234567890")
        );
    }
}
