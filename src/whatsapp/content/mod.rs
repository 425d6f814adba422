//! What an inbound WhatsApp message carries, in the gateway's words: a kind
//! and a typed body. Pure, and total: anything it does not know becomes
//! `Unknown` with the protobuf field's name, never an error or a gap.

use whatsapp_rust::prelude::wa;

use crate::engine::{Content, MediaRef, Quoted, ReceivedContact, ReceivedMedia, ReceivedMediaKind};

mod field_names;
pub mod outgoing;
use field_names::FIELD_NAMES;

/// Longest quoted-text preview kept, in characters.
const PREVIEW_CHARS: usize = 100;

/// The content of `m` (already unwrapped from ephemeral, view-once and
/// device-sent envelopes).
pub fn content_of(m: &wa::Message) -> Content {
    if let Some(text) = m.conversation.as_ref().filter(|t| !t.is_empty()) {
        return Content::Text {
            text: text.clone(),
            quoted: None,
            mentions: Vec::new(),
        };
    }
    if let Some(t) = m.extended_text_message.as_option() {
        let context = t.context_info.as_option();
        return Content::Text {
            text: t.text.clone().unwrap_or_default(),
            quoted: context.and_then(quoted),
            mentions: context.map(mentions).unwrap_or_default(),
        };
    }
    if let Some(media) = media_of(m) {
        return Content::Media(media);
    }
    if let Some(l) = m.location_message.as_option() {
        return Content::Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone(),
            address: l.address.clone(),
            live: l.is_live.unwrap_or(false),
        };
    }
    if let Some(l) = m.live_location_message.as_option() {
        return Content::Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: None,
            address: l.caption.clone(),
            live: true,
        };
    }
    if let Some(c) = m.contact_message.as_option() {
        return Content::Contacts(vec![contact(c)]);
    }
    if let Some(cs) = m.contacts_array_message.as_option() {
        return Content::Contacts(cs.contacts.iter().map(contact).collect());
    }
    let poll = [
        &m.poll_creation_message,
        &m.poll_creation_message_v2,
        &m.poll_creation_message_v3,
    ]
    .into_iter()
    .find_map(|p| p.as_option());
    if let Some(p) = poll {
        return Content::Poll {
            question: p.name.clone().unwrap_or_default(),
            options: p
                .options
                .iter()
                .map(|o| o.option_name.clone().unwrap_or_default())
                .collect(),
            selectable: p.selectable_options_count.unwrap_or(0),
        };
    }
    if let Some(u) = m.poll_update_message.as_option()
        && let Some(vote) = u.vote.as_option()
    {
        return Content::PollVote {
            poll_id: u
                .poll_creation_message_key
                .as_option()
                .and_then(|k| k.id.clone())
                .unwrap_or_default(),
            vote: crate::engine::EncryptedVote {
                payload: vote.enc_payload.clone().unwrap_or_default(),
                iv: vote.enc_iv.clone().unwrap_or_default(),
            },
        };
    }
    if let Some(r) = m.reaction_message.as_option() {
        return Content::Reaction {
            target_id: r
                .key
                .as_option()
                .and_then(|k| k.id.clone())
                .unwrap_or_default(),
            emoji: r.text.clone().unwrap_or_default(),
        };
    }
    if let Some(p) = m.protocol_message.as_option() {
        use wa::message::protocol_message::Type;
        let target_id = p
            .key
            .as_option()
            .and_then(|k| k.id.clone())
            .unwrap_or_default();
        match p.r#type {
            Some(Type::Revoke) => return Content::Deleted { target_id },
            Some(Type::MessageEdit) => {
                let text = p
                    .edited_message
                    .as_option()
                    .and_then(text_of)
                    .unwrap_or_default();
                return Content::Edited { target_id, text };
            }
            _ => {}
        }
    }
    Content::Unknown {
        type_name: type_name(m),
    }
}

/// The text a message shows (plain, extended or a media caption).
fn text_of(m: &wa::Message) -> Option<String> {
    match content_of(m) {
        Content::Text { text, .. } => Some(text),
        Content::Media(media) => media.caption,
        _ => None,
    }
}

fn quoted(c: &wa::ContextInfo) -> Option<Quoted> {
    let id = c.stanza_id.clone()?;
    let preview = c.quoted_message.as_option().map(|q| {
        let text = text_of(q).unwrap_or_else(|| content_of(q).kind().to_owned());
        text.chars().take(PREVIEW_CHARS).collect()
    });
    Some(Quoted {
        message_id: id,
        participant: c.participant.clone(),
        preview,
    })
}

fn mentions(c: &wa::ContextInfo) -> Vec<String> {
    c.mentioned_jid.clone()
}

fn contact(c: &wa::message::ContactMessage) -> ReceivedContact {
    ReceivedContact {
        display_name: c.display_name.clone().unwrap_or_default(),
        vcard: c.vcard.clone().unwrap_or_default(),
    }
}

fn hex(bytes: &Option<Vec<u8>>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

fn media_of(m: &wa::Message) -> Option<ReceivedMedia> {
    let base = |kind| ReceivedMedia {
        kind,
        mime_type: None,
        file_name: None,
        size: None,
        caption: None,
        sha256: None,
        duration_secs: None,
        width: None,
        height: None,
        reference: None,
    };
    if let Some(i) = m.image_message.as_option() {
        return Some(ReceivedMedia {
            mime_type: i.mimetype.clone(),
            size: i.file_length,
            caption: i.caption.clone(),
            sha256: hex(&i.file_sha256),
            width: i.width,
            height: i.height,
            reference: reference(
                ReceivedMediaKind::Image,
                &i.direct_path,
                [&i.media_key, &i.file_sha256, &i.file_enc_sha256],
                i.file_length,
            ),
            ..base(ReceivedMediaKind::Image)
        });
    }
    if let Some(v) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        return Some(ReceivedMedia {
            mime_type: v.mimetype.clone(),
            size: v.file_length,
            caption: v.caption.clone(),
            sha256: hex(&v.file_sha256),
            duration_secs: v.seconds,
            width: v.width,
            height: v.height,
            reference: reference(
                ReceivedMediaKind::Video,
                &v.direct_path,
                [&v.media_key, &v.file_sha256, &v.file_enc_sha256],
                v.file_length,
            ),
            ..base(ReceivedMediaKind::Video)
        });
    }
    if let Some(a) = m.audio_message.as_option() {
        let kind = if a.ptt.unwrap_or(false) {
            ReceivedMediaKind::Voice
        } else {
            ReceivedMediaKind::Audio
        };
        return Some(ReceivedMedia {
            mime_type: a.mimetype.clone(),
            size: a.file_length,
            sha256: hex(&a.file_sha256),
            duration_secs: a.seconds,
            reference: reference(
                kind,
                &a.direct_path,
                [&a.media_key, &a.file_sha256, &a.file_enc_sha256],
                a.file_length,
            ),
            ..base(kind)
        });
    }
    if let Some(d) = m.document_message.as_option() {
        return Some(ReceivedMedia {
            mime_type: d.mimetype.clone(),
            size: d.file_length,
            caption: d.caption.clone(),
            file_name: d.file_name.clone(),
            sha256: hex(&d.file_sha256),
            reference: reference(
                ReceivedMediaKind::Document,
                &d.direct_path,
                [&d.media_key, &d.file_sha256, &d.file_enc_sha256],
                d.file_length,
            ),
            ..base(ReceivedMediaKind::Document)
        });
    }
    if let Some(s) = m.sticker_message.as_option() {
        return Some(ReceivedMedia {
            mime_type: s.mimetype.clone(),
            size: s.file_length,
            sha256: hex(&s.file_sha256),
            width: s.width,
            height: s.height,
            reference: reference(
                ReceivedMediaKind::Sticker,
                &s.direct_path,
                [&s.media_key, &s.file_sha256, &s.file_enc_sha256],
                s.file_length,
            ),
            ..base(ReceivedMediaKind::Sticker)
        });
    }
    None
}

/// What a download needs, when the message carries all of it. The
/// message's own key (id, chat, sender) is filled in by the caller.
fn reference(
    kind: ReceivedMediaKind,
    direct_path: &Option<String>,
    [media_key, file_sha256, file_enc_sha256]: [&Option<Vec<u8>>; 3],
    file_length: Option<u64>,
) -> Option<Box<MediaRef>> {
    Some(Box::new(MediaRef {
        kind,
        direct_path: direct_path.clone().filter(|p| !p.is_empty())?,
        media_key: media_key.clone().filter(|k| !k.is_empty())?,
        file_sha256: file_sha256.clone()?,
        file_enc_sha256: file_enc_sha256.clone()?,
        file_length: file_length?,
        message_id: String::new(),
        chat: String::new(),
        sender: String::new(),
        from_me: false,
    }))
}

/// The name of the message's content field, as WhatsApp's protobuf spells
/// it, for messages the gateway does not parse.
fn type_name(m: &wa::Message) -> String {
    use whatsapp_rust::buffa::Message as _;
    use whatsapp_rust::buffa::encoding::{Tag, skip_field};
    // Fields that ride along with any content.
    const ENVELOPE: [&str; 2] = ["senderKeyDistributionMessage", "messageContextInfo"];
    let encoded = m.encode_to_vec();
    let mut buf = encoded.as_slice();
    while let Ok(tag) = Tag::decode(&mut buf) {
        let name = FIELD_NAMES
            .iter()
            .find(|(n, _)| *n == tag.field_number())
            .map(|(_, name)| *name);
        match name {
            Some(name) if ENVELOPE.contains(&name) => {}
            Some(name) => return name.to_owned(),
            None => return format!("field_{}", tag.field_number()),
        }
        if skip_field(tag, &mut buf).is_err() {
            break;
        }
    }
    "empty".to_owned()
}

#[cfg(test)]
mod tests;
