//! A JSON string that is only a string. poem-openapi's `String` also takes
//! numbers and booleans (`{"name": false}` becomes "false"), which the
//! document does not allow; request bodies use this instead, and `Uri` where
//! the string is a URL (the document says `format: uri`).

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::LazyLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use regex::Regex;
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0
    }
}

/// The strings of an optional text or list, for the domain below the edge.
pub fn opt(t: Option<Text>) -> Option<String> {
    t.map(String::from)
}

pub fn list(t: Vec<Text>) -> Vec<String> {
    t.into_iter().map(String::from).collect()
}

impl Type for Text {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Text(s)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// An absolute http(s) URL as `url::Url` parses it: the document states
/// it (so generated requests carry only URLs the server takes) and `Uri`
/// enforces it. Private addresses are a setting the document cannot know.
pub const HTTP_URL_PATTERN: &str = concat!(
    // scheme
    r"^[hH][tT][tT][pP][sS]?://",
    // userinfo
    r"(?:(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*@)?",
    // host: a name whose last label starts with a letter
    r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
    // or an IPv4 address
    r"|(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    // or a bracketed IPv6 address
    r"|\[(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,7}:|(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,5}(?::[0-9A-Fa-f]{1,4}){1,2}|(?:[0-9A-Fa-f]{1,4}:){1,4}(?::[0-9A-Fa-f]{1,4}){1,3}|(?:[0-9A-Fa-f]{1,4}:){1,3}(?::[0-9A-Fa-f]{1,4}){1,4}|(?:[0-9A-Fa-f]{1,4}:){1,2}(?::[0-9A-Fa-f]{1,4}){1,5}|[0-9A-Fa-f]{1,4}:(?::[0-9A-Fa-f]{1,4}){1,6}|:(?:(?::[0-9A-Fa-f]{1,4}){1,7}|:)|::(?:[fF]{4}(?::0{1,4})?:)?(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|(?:[0-9A-Fa-f]{1,4}:){1,4}:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})\])",
    // port, 0 to 65535
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    // path, query and fragment: RFC 3986 characters
    r"(?:/(?:(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})|/)*)?(?:\?(?:(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})|[/?])*)?(?:#(?:(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})|[/?])*)?$",
);

/// The longest URL taken.
pub const URL_MAX_LEN: usize = 2048;

static HTTP_URL: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(HTTP_URL_PATTERN).ok());

/// A URL in a request body: a string the document marks `format: uri`,
/// with the http(s) pattern and length it must have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uri(pub String);

impl Deref for Uri {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Uri> for String {
    fn from(u: Uri) -> Self {
        u.0
    }
}

impl Type for Uri {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string_uri".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            max_length: Some(URL_MAX_LEN),
            pattern: Some(HTTP_URL_PATTERN.to_owned()),
            ..MetaSchema::new_with_format("string", "uri")
        }))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Uri {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let s = Text::parse_from_json(value)
            .map_err(ParseError::propagate)?
            .0;
        if s.chars().count() > URL_MAX_LEN {
            return Err(ParseError::custom(format!(
                "longer than {URL_MAX_LEN} characters"
            )));
        }
        if !HTTP_URL.as_ref().is_some_and(|re| re.is_match(&s)) {
            return Err(ParseError::custom("not an absolute http or https URL"));
        }
        Ok(Uri(s))
    }
}

impl ToJSON for Uri {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_strings_parse() {
        assert_eq!(
            Text::parse_from_json(Some(json!("hi"))).ok(),
            Some(Text("hi".into()))
        );
        for not_a_string in [json!(false), json!(1), json!(null), json!([]), json!({})] {
            assert!(Text::parse_from_json(Some(not_a_string)).is_err());
        }
        assert!(Text::parse_from_json(None).is_err());
    }

    #[test]
    fn urls_have_the_documented_shape() {
        assert!(HTTP_URL.is_some(), "the pattern compiles");
        let parse = |s: &str| Uri::parse_from_json(Some(json!(s))).is_ok();
        for ok in [
            "https://example.com/hook?x=1#f",
            "HTTP://u:p@a.example:8080/",
            "http://203.0.113.5/",
            "http://[::ffff:10.0.0.1]:9/",
        ] {
            assert!(parse(ok), "{ok}");
            assert!(url::Url::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0",
            "http://",
            "ftp://example.com",
            "http://0",
            "http://a b",
            "http://x/\u{e9}",
        ] {
            assert!(!parse(bad), "{bad}");
        }
    }
}
