//! Every branch of the content parser, on messages built as WhatsApp
//! sends them.

use wa::message as m;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::prelude::wa;

use super::content_of;
use crate::engine::{Content, ReceivedMediaKind};

fn key(id: &str) -> MessageField<wa::MessageKey> {
    MessageField::some(wa::MessageKey {
        id: Some(id.into()),
        ..Default::default()
    })
}

#[test]
fn plain_text() {
    let msg = wa::Message {
        conversation: Some("halo".into()),
        ..Default::default()
    };
    let c = content_of(&msg);
    assert_eq!(c.kind(), "text");
    assert_eq!(c.text(), Some("halo"));
}

#[test]
fn a_reply_names_what_it_quotes_and_who_it_mentions() {
    let quoted = wa::Message {
        conversation: Some("x".repeat(300)),
        ..Default::default()
    };
    let msg = wa::Message {
        extended_text_message: MessageField::some(m::ExtendedTextMessage {
            text: Some("setuju @6281".into()),
            context_info: MessageField::some(wa::ContextInfo {
                stanza_id: Some("3EB0QUOTED".into()),
                participant: Some("6281@s.whatsapp.net".into()),
                quoted_message: MessageField::some(quoted),
                mentioned_jid: vec!["6281@s.whatsapp.net".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Content::Text {
        text,
        quoted,
        mentions,
    } = content_of(&msg)
    else {
        panic!("text");
    };
    assert_eq!(text, "setuju @6281");
    let quoted = quoted.expect("quoted");
    assert_eq!(quoted.message_id, "3EB0QUOTED");
    assert_eq!(quoted.participant.as_deref(), Some("6281@s.whatsapp.net"));
    assert_eq!(quoted.preview.map(|p| p.chars().count()), Some(100));
    assert_eq!(mentions, ["6281@s.whatsapp.net"]);
}

#[test]
fn every_media_kind() {
    let cases: Vec<(wa::Message, &str)> = vec![
        (
            wa::Message {
                image_message: MessageField::some(m::ImageMessage {
                    mimetype: Some("image/jpeg".into()),
                    caption: Some("foto".into()),
                    file_sha256: Some(vec![0xab, 0x01]),
                    width: Some(640),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "image",
        ),
        (
            wa::Message {
                video_message: MessageField::some(m::VideoMessage {
                    seconds: Some(12),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "video",
        ),
        (
            wa::Message {
                audio_message: MessageField::some(m::AudioMessage {
                    ptt: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "voice",
        ),
        (
            wa::Message {
                audio_message: MessageField::some(m::AudioMessage::default()),
                ..Default::default()
            },
            "audio",
        ),
        (
            wa::Message {
                document_message: MessageField::some(m::DocumentMessage {
                    file_name: Some("invoice.pdf".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "document",
        ),
        (
            wa::Message {
                sticker_message: MessageField::some(m::StickerMessage::default()),
                ..Default::default()
            },
            "sticker",
        ),
    ];
    for (msg, kind) in cases {
        let c = content_of(&msg);
        assert_eq!(c.kind(), kind, "{c:?}");
        let Content::Media(media) = c else {
            panic!("media")
        };
        if kind == "image" {
            assert_eq!(media.sha256.as_deref(), Some("ab01"));
            assert_eq!(media.caption.as_deref(), Some("foto"));
            assert_eq!(media.width, Some(640));
        }
        if kind == "video" {
            assert_eq!(media.duration_secs, Some(12));
        }
        if kind == "document" {
            assert_eq!(media.kind, ReceivedMediaKind::Document);
            assert_eq!(media.file_name.as_deref(), Some("invoice.pdf"));
        }
    }
}

#[test]
fn locations_fixed_and_live() {
    let fixed = wa::Message {
        location_message: MessageField::some(m::LocationMessage {
            degrees_latitude: Some(-6.2),
            degrees_longitude: Some(106.8),
            name: Some("Monas".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Content::Location { latitude, name, .. } = content_of(&fixed) else {
        panic!("location")
    };
    assert_eq!((latitude, name.as_deref()), (-6.2, Some("Monas")));
    let live = wa::Message {
        live_location_message: MessageField::some(m::LiveLocationMessage {
            degrees_latitude: Some(1.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(content_of(&live).kind(), "live_location");
}

#[test]
fn contact_cards_one_or_many() {
    let card = |name: &str| m::ContactMessage {
        display_name: Some(name.into()),
        vcard: Some(format!("BEGIN:VCARD\nFN:{name}\nEND:VCARD")),
        ..Default::default()
    };
    let one = wa::Message {
        contact_message: MessageField::some(card("Ani")),
        ..Default::default()
    };
    let many = wa::Message {
        contacts_array_message: MessageField::some(m::ContactsArrayMessage {
            contacts: vec![card("Ani"), card("Budi")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let Content::Contacts(cards) = content_of(&one) else {
        panic!("contacts")
    };
    assert_eq!(cards[0].display_name, "Ani");
    let Content::Contacts(cards) = content_of(&many) else {
        panic!("contacts")
    };
    assert_eq!(cards.len(), 2);
    assert!(cards[1].vcard.contains("FN:Budi"));
}

#[test]
fn polls_of_every_version() {
    let poll = m::PollCreationMessage {
        name: Some("Makan di mana?".into()),
        options: vec![
            m::poll_creation_message::Option {
                option_name: Some("Padang".into()),
                ..Default::default()
            },
            m::poll_creation_message::Option {
                option_name: Some("Sunda".into()),
                ..Default::default()
            },
        ],
        selectable_options_count: Some(1),
        ..Default::default()
    };
    for msg in [
        wa::Message {
            poll_creation_message: MessageField::some(poll.clone()),
            ..Default::default()
        },
        wa::Message {
            poll_creation_message_v3: MessageField::some(poll.clone()),
            ..Default::default()
        },
    ] {
        let Content::Poll {
            question,
            options,
            selectable,
        } = content_of(&msg)
        else {
            panic!("poll")
        };
        assert_eq!(question, "Makan di mana?");
        assert_eq!(options, ["Padang", "Sunda"]);
        assert_eq!(selectable, 1);
    }
}

#[test]
fn reactions_name_their_target_and_may_be_removed() {
    let msg = |emoji: &str| wa::Message {
        reaction_message: MessageField::some(m::ReactionMessage {
            key: key("3EB0TARGET"),
            text: Some(emoji.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        content_of(&msg("👍")),
        Content::Reaction {
            target_id: "3EB0TARGET".into(),
            emoji: "👍".into()
        }
    );
    assert!(matches!(content_of(&msg("")), Content::Reaction { emoji, .. } if emoji.is_empty()));
}

#[test]
fn edits_and_deletions_name_their_target() {
    use m::protocol_message::Type;
    let edit = wa::Message {
        protocol_message: MessageField::some(m::ProtocolMessage {
            key: key("3EB0OLD"),
            r#type: Some(Type::MessageEdit),
            edited_message: MessageField::some(wa::Message {
                conversation: Some("diperbaiki".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        content_of(&edit),
        Content::Edited {
            target_id: "3EB0OLD".into(),
            text: "diperbaiki".into()
        }
    );
    let revoke = wa::Message {
        protocol_message: MessageField::some(m::ProtocolMessage {
            key: key("3EB0GONE"),
            r#type: Some(Type::Revoke),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        content_of(&revoke),
        Content::Deleted {
            target_id: "3EB0GONE".into()
        }
    );
}

#[test]
fn anything_else_is_unknown_by_its_field_name() {
    let other_protocol = wa::Message {
        protocol_message: MessageField::some(m::ProtocolMessage {
            r#type: Some(m::protocol_message::Type::EphemeralSetting),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        content_of(&other_protocol),
        Content::Unknown {
            type_name: "protocolMessage".into()
        }
    );
    let empty = wa::Message::default();
    assert_eq!(
        content_of(&empty),
        Content::Unknown {
            type_name: "empty".into()
        }
    );
    // Malformed: a reaction without a key or text still parses, to an
    // empty target, and an empty text is not a text message.
    let hollow = wa::Message {
        reaction_message: MessageField::some(m::ReactionMessage::default()),
        conversation: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(content_of(&hollow).kind(), "reaction");
}
