//! The body every receiver gets: `{type, timestamp, instance_id, data}`,
//! built from the stored event, so every retry sends identical bytes.

use chrono::SecondsFormat;
use entity::webhook_events::Model as Event;
use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    instance_id: uuid::Uuid,
    data: &'a serde_json::Value,
}

pub fn body(event: &Event) -> Vec<u8> {
    let body = Body {
        event_type: &event.event_type,
        timestamp: event
            .created_at
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        instance_id: event.instance_id,
        data: &event.data,
    };
    // Serialising a struct of strings and a JSON value cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}
