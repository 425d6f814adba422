//! What the gateway sends, in WhatsApp's protobufs: the context of a reply
//! (the quoted message, its id and sender) and of mentions, polls with the
//! message secret the gateway keeps, and the opening of votes on them.

use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::prelude::wa;
use whatsapp_rust::wacore::poll;

use crate::engine::{Body, Context, EncryptedVote};

/// The context info `ctx` asks for; `None` when it asks for nothing.
pub fn context_info(ctx: &Context) -> Option<wa::ContextInfo> {
    if ctx.is_empty() {
        return None;
    }
    let mut info = wa::ContextInfo {
        mentioned_jid: ctx.mentions.clone(),
        ..Default::default()
    };
    if let Some(quote) = &ctx.quote {
        info.stanza_id = Some(quote.message_id.clone());
        info.participant = Some(quote.sender_jid.clone());
        if let Some(body) = &quote.body {
            info.quoted_message = MessageField::some(quoted_message(body));
        }
    }
    Some(info)
}

/// The message a quote shows: the original's content without its media
/// (a preview, as WhatsApp's apps send it).
pub fn quoted_message(body: &Body) -> wa::Message {
    use wa::message as m;
    let mut out = wa::Message::default();
    match body {
        Body::Text { text } => out.conversation = Some(text.clone()),
        Body::Media {
            kind,
            caption,
            mime_type,
            file_name,
        } => match kind.as_str() {
            "image" | "sticker" => {
                out.image_message = MessageField::some(m::ImageMessage {
                    caption: caption.clone(),
                    mimetype: mime_type.clone(),
                    ..Default::default()
                })
            }
            "video" => {
                out.video_message = MessageField::some(m::VideoMessage {
                    caption: caption.clone(),
                    mimetype: mime_type.clone(),
                    ..Default::default()
                })
            }
            "audio" | "voice" => {
                out.audio_message = MessageField::some(m::AudioMessage {
                    mimetype: mime_type.clone(),
                    ptt: Some(kind == "voice"),
                    ..Default::default()
                })
            }
            _ => {
                out.document_message = MessageField::some(m::DocumentMessage {
                    caption: caption.clone(),
                    mimetype: mime_type.clone(),
                    file_name: file_name.clone(),
                    title: file_name.clone(),
                    ..Default::default()
                })
            }
        },
        Body::Location {
            latitude,
            longitude,
            name,
            address,
        } => {
            out.location_message = MessageField::some(m::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                ..Default::default()
            })
        }
        Body::Contacts { contacts } if contacts.len() == 1 => {
            out.contact_message = MessageField::some(m::ContactMessage {
                display_name: Some(contacts[0].display_name.clone()),
                vcard: Some(contacts[0].vcard.clone()),
                ..Default::default()
            })
        }
        Body::Contacts { contacts } => {
            out.contacts_array_message = MessageField::some(m::ContactsArrayMessage {
                display_name: Some(format!("{} contacts", contacts.len())),
                contacts: contacts
                    .iter()
                    .map(|c| m::ContactMessage {
                        display_name: Some(c.display_name.clone()),
                        vcard: Some(c.vcard.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        Body::Poll {
            question,
            options,
            selectable,
            ..
        } => {
            let poll = poll_creation(question, options, *selectable);
            if *selectable == 1 {
                out.poll_creation_message_v3 = MessageField::some(poll);
            } else {
                out.poll_creation_message = MessageField::some(poll);
            }
        }
    }
    out
}

/// Puts `ctx` on the message, wherever its kind carries a context: plain
/// text becomes extended text, which does.
pub fn with_context(mut message: wa::Message, ctx: &Context) -> wa::Message {
    let Some(info) = context_info(ctx) else {
        return message;
    };
    if let Some(text) = message.conversation.take() {
        message.extended_text_message = MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(text),
            ..Default::default()
        });
    }
    let slot = if let Some(m) = message.extended_text_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.image_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.video_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.audio_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.document_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.location_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.contact_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.contacts_array_message.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.poll_creation_message_v3.as_option_mut() {
        &mut m.context_info
    } else if let Some(m) = message.poll_creation_message.as_option_mut() {
        &mut m.context_info
    } else {
        return message;
    };
    *slot = MessageField::some(info);
    message
}

fn poll_creation(
    question: &str,
    options: &[String],
    selectable: u32,
) -> wa::message::PollCreationMessage {
    wa::message::PollCreationMessage {
        name: Some(question.to_owned()),
        options: options
            .iter()
            .map(|o| wa::message::poll_creation_message::Option {
                option_name: Some(o.clone()),
                ..Default::default()
            })
            .collect(),
        selectable_options_count: Some(selectable),
        ..Default::default()
    }
}

/// A poll carrying `secret` as its message secret, which voters encrypt
/// their votes with: single choice as v3, multiple choice as v1, as
/// WhatsApp Web sends them.
pub fn poll_message(
    question: &str,
    options: &[String],
    selectable: u32,
    secret: &[u8; 32],
) -> wa::Message {
    let poll = poll_creation(question, options, selectable);
    let mut message = wa::Message::default();
    if selectable == 1 {
        message.poll_creation_message_v3 = MessageField::some(poll);
    } else {
        message.poll_creation_message = MessageField::some(poll);
    }
    message.message_context_info = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(secret.to_vec()),
        ..Default::default()
    });
    message
}

/// The option names a vote picked. `creator_jid` and `voter_jid` are the
/// poll creator's and the voter's JIDs without device (they key the
/// vote's encryption); `options` are the poll's. An empty answer is a
/// withdrawn vote.
pub fn open_vote(
    vote: &EncryptedVote,
    secret: &[u8],
    poll_id: &str,
    creator_jid: &str,
    voter_jid: &str,
    options: &[String],
) -> Result<Vec<String>, String> {
    let hashes = poll::decrypt_poll_vote_with_secret(
        poll::PollVoteCiphertext {
            enc_payload: &vote.payload,
            enc_iv: &vote.iv,
        },
        secret,
        poll_id,
        creator_jid,
        voter_jid,
    )
    .map_err(|e| e.to_string())?;
    Ok(options
        .iter()
        .filter(|o| {
            let hash = poll::compute_option_hash(o);
            hashes.iter().any(|h| h.as_slice() == hash)
        })
        .cloned()
        .collect())
}

/// A vote for `picked`, encrypted as a voter's phone does: for the scripted
/// engine, which plays voters without WhatsApp.
pub fn seal_vote(
    picked: &[String],
    secret: &[u8],
    poll_id: &str,
    creator_jid: &str,
    voter_jid: &str,
) -> Result<EncryptedVote, String> {
    let hashes: Vec<Vec<u8>> = picked
        .iter()
        .map(|o| poll::compute_option_hash(o).to_vec())
        .collect();
    let (payload, iv) =
        poll::encrypt_poll_vote_with_secret(&hashes, secret, poll_id, creator_jid, voter_jid)
            .map_err(|e| e.to_string())?;
    Ok(EncryptedVote {
        payload,
        iv: iv.to_vec(),
    })
}
