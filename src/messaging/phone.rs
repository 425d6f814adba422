//! Phone numbers to E.164 digits, by libphonenumber's rules (the
//! `phonenumber` crate) rather than hand-written ones.

use phonenumber::country;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("`{0}` is not a phone number")]
    NotANumber(String),
    #[error("`{0}` is a national number (leading 0) and no default region is configured")]
    NoRegion(String),
    #[error("`{0}` is not a valid phone number")]
    Invalid(String),
}

/// Parses an ISO 3166 region code such as `ID` (for settings).
pub fn region(code: &str) -> Option<country::Id> {
    code.trim().to_uppercase().parse().ok()
}

/// E.164 digits (no `+`) of `input`. Spaces, dashes, dots and parentheses
/// are ignored; `+` or `00` starts an international number; a leading `0`
/// is national to `default_region`; other digits are taken as international.
pub fn normalize(input: &str, default_region: Option<country::Id>) -> Result<String, PhoneError> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect();
    let (international, digits) = if let Some(rest) = compact.strip_prefix('+') {
        (true, rest)
    } else if let Some(rest) = compact.strip_prefix("00") {
        (true, rest)
    } else {
        (!compact.starts_with('0'), compact.as_str())
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::NotANumber(input.to_owned()));
    }
    let parsed = if international {
        phonenumber::parse(None, format!("+{digits}"))
    } else {
        let region = default_region.ok_or_else(|| PhoneError::NoRegion(input.to_owned()))?;
        phonenumber::parse(Some(region), digits)
    }
    .map_err(|_| PhoneError::Invalid(input.to_owned()))?;
    if !parsed.is_valid() {
        return Err(PhoneError::Invalid(input.to_owned()));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    Ok(e164.trim_start_matches('+').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let id = region("id");
        let ok = [
            ("+62 812-3456-7890", None, "6281234567890"),
            ("0062 812 3456 7890", None, "6281234567890"),
            ("6281234567890", None, "6281234567890"),
            ("0812-3456-7890", id, "6281234567890"),
            ("(0812) 3456.7890", id, "6281234567890"),
            ("+1 (415) 555-2671", id, "14155552671"),
            ("+55 11 91234-5678", None, "5511912345678"),
            ("+44 7911 123456", None, "447911123456"),
        ];
        for (input, region, want) in ok {
            assert_eq!(normalize(input, region).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects() {
        let id = region("ID");
        assert!(matches!(
            normalize("0812345678", None),
            Err(PhoneError::NoRegion(_))
        ));
        for bad in [
            "",
            "+",
            "12",
            "+62 12",
            "0812-CALL-ME",
            "abc",
            "+999 1234567",
            "62812",
        ] {
            assert!(normalize(bad, id).is_err(), "{bad} should be rejected");
        }
    }
}
