//! The `file` of a media-file form, spooled to disk as it arrives (hashed,
//! its head kept for sniffing), where poem-openapi's `Upload` would spool
//! it first and leave the reading to us.

use std::borrow::Cow;

use poem::web::Field;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromMultipartField, ParseResult, Type};

use crate::messaging::spool::{Spooled, spool};

#[derive(Debug)]
pub struct SpooledFile {
    pub file_name: Option<String>,
    pub spooled: Spooled,
}

impl Type for SpooledFile {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "string_binary".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ParseFromMultipartField for SpooledFile {
    async fn parse_from_multipart(field: Option<Field>) -> ParseResult<Self> {
        let field = field.ok_or_else(ParseError::expected_input)?;
        let file_name = field.file_name().map(str::to_owned);
        // The body limit bounds the request; the media limit, which depends
        // on the kind, is checked once the kind is known.
        let spooled = spool(Box::pin(field.into_async_read()), u64::MAX)
            .await
            .map_err(ParseError::custom)?;
        Ok(Self { file_name, spooled })
    }
}
