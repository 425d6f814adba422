//! What a stored message carries beyond its text, as the API shows it: a
//! location, contact cards, a poll or a media file's description.

use poem_openapi::Object;
use uuid::Uuid;

use crate::engine::Body;
use crate::media::media_url;

/// A shared location.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "MessageLocation")]
pub struct LocationView {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// One contact card.
#[derive(Debug, Object)]
#[oai(rename = "MessageContactCard")]
pub struct ContactCardView {
    pub display_name: String,
    pub vcard: String,
}

/// A poll's question and options.
#[derive(Debug, Object)]
#[oai(rename = "MessagePoll")]
pub struct PollView {
    pub question: String,
    pub options: Vec<String>,
    /// How many options a voter may pick; 0 means any number.
    pub selectable: u32,
}

/// A media file as WhatsApp described it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, rename = "MessageMedia")]
pub struct MediaView {
    /// `image`, `video`, `audio`, `voice`, `document` or `sticker`.
    pub kind: String,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    /// Where the gateway serves the file (received and phone-sent media;
    /// `GET` it with a `read` key).
    pub url: Option<String>,
}

/// The typed parts of one message's body; at most one is set.
#[derive(Default)]
pub struct BodyViews {
    pub location: Option<LocationView>,
    pub contacts: Option<Vec<ContactCardView>>,
    pub poll: Option<PollView>,
    pub media: Option<MediaView>,
}

impl BodyViews {
    /// `served` says whether the gateway keeps the media file itself (it
    /// does for what it received or the phone sent, not for API sends).
    pub fn of(body: Option<Body>, instance_id: Uuid, message_id: &str, served: bool) -> Self {
        let mut views = Self::default();
        match body {
            Some(Body::Location {
                latitude,
                longitude,
                name,
                address,
            }) => {
                views.location = Some(LocationView {
                    latitude,
                    longitude,
                    name,
                    address,
                })
            }
            Some(Body::Contacts { contacts }) => {
                views.contacts = Some(
                    contacts
                        .into_iter()
                        .map(|c| ContactCardView {
                            display_name: c.display_name,
                            vcard: c.vcard,
                        })
                        .collect(),
                )
            }
            Some(Body::Poll {
                question,
                options,
                selectable,
                ..
            }) => {
                views.poll = Some(PollView {
                    question,
                    options,
                    selectable,
                })
            }
            Some(Body::Media {
                kind,
                mime_type,
                file_name,
                ..
            }) => {
                views.media = Some(MediaView {
                    kind,
                    mime_type,
                    file_name,
                    url: served.then(|| media_url(instance_id, message_id)),
                })
            }
            Some(Body::Text { .. }) | None => {}
        }
        views
    }
}
