//! whatsapp-rust events in the gateway's words. Pure: no I/O, no state but
//! what the caller passes in.

use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;

use crate::engine::EngineEvent;

/// E.164 digits of a phone-number JID; `None` for LIDs and groups.
pub fn phone_of(jid: &Jid) -> Option<String> {
    jid.is_pn().then(|| jid.user.to_string())
}

/// The JID without its device part, as people and the API use it.
pub fn bare(jid: &Jid) -> String {
    jid.to_non_ad_string()
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
        _ => return None,
    })
}
