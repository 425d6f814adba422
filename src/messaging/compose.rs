//! The rules for reactions, locations, contact cards and polls: what a
//! request may ask for, checked before anything is sent, and the vCard a
//! contact card carries.

use crate::engine::{ContactCard, OutgoingMessage};

/// Largest vCard accepted, raw or built.
pub const MAX_VCARD_BYTES: usize = 16 * 1024;
pub const MIN_POLL_OPTIONS: usize = 2;
pub const MAX_POLL_OPTIONS: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComposeError {
    #[error("latitude must be within -90..90 and longitude within -180..180")]
    InvalidCoordinates,
    #[error("`{0}` is not a single emoji")]
    InvalidEmoji(String),
    #[error("a poll has {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} options, got {0}")]
    PollOptionCount(usize),
    #[error("poll options must be distinct and not blank")]
    PollOptionsNotDistinct,
    #[error("selectable_count must be between 1 and the number of options ({0})")]
    PollSelectableCount(usize),
    #[error("a contact has either a vCard or a display name and phone numbers")]
    InvalidContact,
    #[error("a vCard starts with BEGIN:VCARD and ends with END:VCARD")]
    InvalidVcard,
    #[error("a vCard may be at most {MAX_VCARD_BYTES} bytes")]
    VcardTooLarge,
}

impl ComposeError {
    /// The stable problem code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCoordinates => "invalid_coordinates",
            Self::InvalidEmoji(_) => "invalid_emoji",
            Self::PollOptionCount(_) | Self::PollOptionsNotDistinct => "invalid_poll_options",
            Self::PollSelectableCount(_) => "invalid_selectable_count",
            Self::InvalidContact => "invalid_contact",
            Self::InvalidVcard => "invalid_vcard",
            Self::VcardTooLarge => "vcard_too_large",
        }
    }
}

pub fn location(
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
) -> Result<OutgoingMessage, ComposeError> {
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(ComposeError::InvalidCoordinates);
    }
    Ok(OutgoingMessage::Location {
        latitude,
        longitude,
        name,
        address,
    })
}

/// A reaction to `target_id`; `from_me` is settled by the send pipeline,
/// which knows what this instance sent.
pub fn reaction(target_id: String, emoji: String) -> Result<OutgoingMessage, ComposeError> {
    if !emoji.is_empty() && !is_one_emoji(&emoji) {
        return Err(ComposeError::InvalidEmoji(emoji));
    }
    Ok(OutgoingMessage::Reaction {
        target_id,
        from_me: false,
        emoji,
    })
}

/// One emoji: a short run of pictographic characters with their joiners,
/// variation selectors and modifiers (keycaps allow a leading digit, `#`
/// or `*`). Letters, spaces and punctuation alone are not reactions.
fn is_one_emoji(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() > 10 || s.chars().any(char::is_whitespace) {
        return false;
    }
    let keycap = chars.len() >= 2
        && matches!(chars[0], '0'..='9' | '#' | '*')
        && chars[1..]
            .iter()
            .all(|c| matches!(c, '\u{FE0F}' | '\u{20E3}'))
        && chars.contains(&'\u{20E3}');
    keycap
        || (chars.iter().any(|c| u32::from(*c) >= 0x2000)
            && chars.iter().all(|c| !c.is_ascii() && !c.is_alphabetic()))
}

pub fn poll(
    question: String,
    options: Vec<String>,
    selectable: Option<u32>,
) -> Result<OutgoingMessage, ComposeError> {
    let n = options.len();
    if !(MIN_POLL_OPTIONS..=MAX_POLL_OPTIONS).contains(&n) {
        return Err(ComposeError::PollOptionCount(n));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(n);
    for option in &options {
        let trimmed = option.trim();
        if trimmed.is_empty() || seen.contains(&trimmed) {
            return Err(ComposeError::PollOptionsNotDistinct);
        }
        seen.push(trimmed);
    }
    let selectable = selectable.unwrap_or(1);
    if selectable == 0 || selectable as usize > n {
        return Err(ComposeError::PollSelectableCount(n));
    }
    Ok(OutgoingMessage::Poll {
        question,
        options,
        selectable,
        // Drawn by the send pipeline once the request is accepted.
        secret: [0; 32],
    })
}

/// A contact as a request gives it: a raw vCard, or a name and numbers
/// (already normalised to E.164 digits).
pub enum ContactInput {
    Vcard {
        display_name: Option<String>,
        vcard: String,
    },
    Numbers {
        display_name: String,
        phone_numbers: Vec<String>,
    },
}

pub fn contacts(inputs: Vec<ContactInput>) -> Result<OutgoingMessage, ComposeError> {
    if inputs.is_empty() {
        return Err(ComposeError::InvalidContact);
    }
    let cards = inputs
        .into_iter()
        .map(card)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OutgoingMessage::Contacts(cards))
}

fn card(input: ContactInput) -> Result<ContactCard, ComposeError> {
    let (display_name, vcard) = match input {
        ContactInput::Vcard {
            display_name,
            vcard,
        } => {
            let trimmed = vcard.trim();
            if !trimmed.starts_with("BEGIN:VCARD") || !trimmed.ends_with("END:VCARD") {
                return Err(ComposeError::InvalidVcard);
            }
            let name = display_name
                .or_else(|| vcard_field(trimmed, "FN"))
                .ok_or(ComposeError::InvalidContact)?;
            (name, vcard)
        }
        ContactInput::Numbers {
            display_name,
            phone_numbers,
        } => {
            if display_name.trim().is_empty()
                || display_name.chars().any(char::is_control)
                || phone_numbers.is_empty()
            {
                return Err(ComposeError::InvalidContact);
            }
            (
                display_name.clone(),
                build_vcard(&display_name, &phone_numbers),
            )
        }
    };
    if vcard.len() > MAX_VCARD_BYTES {
        return Err(ComposeError::VcardTooLarge);
    }
    Ok(ContactCard {
        display_name,
        vcard,
    })
}

/// The vCard WhatsApp's apps write: the `waid` parameter is what makes the
/// card offer "Message".
fn build_vcard(name: &str, numbers: &[String]) -> String {
    let escaped = name
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(';', "\\;");
    let mut card = format!("BEGIN:VCARD\nVERSION:3.0\nN:;{escaped};;;\nFN:{escaped}\n");
    for n in numbers {
        card.push_str(&format!("TEL;type=CELL;waid={n}:+{n}\n"));
    }
    card.push_str("END:VCARD");
    card
}

fn vcard_field(vcard: &str, name: &str) -> Option<String> {
    vcard.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.split(';').next()?;
        (key.eq_ignore_ascii_case(name) && !value.trim().is_empty())
            .then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_rules() {
        for ok in ["👍", "❤️", "👍🏽", "👨‍👩‍👧", "1️⃣", "🇮🇩"] {
            assert!(is_one_emoji(ok), "{ok}");
        }
        for bad in ["a", "ok", "👍 👍", ":)", "é", "👍a"] {
            assert!(!is_one_emoji(bad), "{bad}");
        }
    }

    #[test]
    fn poll_rules() {
        let opts = |n: usize| (0..n).map(|i| format!("o{i}")).collect::<Vec<_>>();
        assert_eq!(
            poll("q".into(), opts(1), None),
            Err(ComposeError::PollOptionCount(1))
        );
        assert_eq!(
            poll("q".into(), opts(13), None),
            Err(ComposeError::PollOptionCount(13))
        );
        assert_eq!(
            poll("q".into(), vec!["a".into(), " a ".into()], None),
            Err(ComposeError::PollOptionsNotDistinct)
        );
        assert_eq!(
            poll("q".into(), opts(3), Some(4)),
            Err(ComposeError::PollSelectableCount(3))
        );
        assert!(poll("q".into(), opts(12), Some(12)).is_ok());
    }

    #[test]
    fn contact_cards() {
        let built = contacts(vec![ContactInput::Numbers {
            display_name: "Budi; Santoso".into(),
            phone_numbers: vec!["6281234567890".into()],
        }])
        .expect("card");
        let OutgoingMessage::Contacts(cards) = built else {
            panic!("not contacts")
        };
        assert!(cards[0].vcard.contains("FN:Budi\\; Santoso"));
        assert!(cards[0].vcard.contains("waid=6281234567890:+6281234567890"));
        let raw = ContactInput::Vcard {
            display_name: None,
            vcard: "BEGIN:VCARD\nVERSION:3.0\nFN:Ani\nEND:VCARD".into(),
        };
        let OutgoingMessage::Contacts(cards) = contacts(vec![raw]).expect("raw") else {
            panic!("not contacts")
        };
        assert_eq!(cards[0].display_name, "Ani");
        let big = ContactInput::Vcard {
            display_name: Some("x".into()),
            vcard: format!("BEGIN:VCARD\n{}\nEND:VCARD", "N".repeat(MAX_VCARD_BYTES)),
        };
        assert_eq!(contacts(vec![big]), Err(ComposeError::VcardTooLarge));
    }
}
