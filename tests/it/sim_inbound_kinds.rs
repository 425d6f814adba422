//! A contact's location, contact card, poll and a kind the gateway does
//! not know, sent from the simulated phone to the real client: each
//! arrives as `message.received` with its kind and typed body, and `GET`
//! reads the same body back from the history.

use reqwest::Method;
use serde_json::Value;
use wasim::Sim;
use wasim::{MessageField, wa};

use crate::harness::send;
use crate::sim_e2e::Gateway;
use crate::sim_outbound::paired;

const SENDER: &str = "6281234569201";
const FRIEND: &str = "6281234569202";

async fn arrives(
    gw: &Gateway,
    sim: &Sim,
    id: uuid::Uuid,
    secret: &str,
    m: wa::Message,
) -> (Value, Value) {
    let mid = sim.send_message(FRIEND, SENDER, &m).await.expect("inbound");
    let hook = gw
        .message_webhook(id, "message.received", secret, &mid)
        .await;
    let r = send(gw.req(Method::GET, &format!("/v1/instances/{id}/messages/{mid}"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    (hook["data"].clone(), r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_locations_cards_polls_and_unknown_kinds_arrive_typed() {
    use wa::message as m;
    let sim = Sim::start().await.expect("simulator");
    let (gw, id, secret) = paired(&sim, SENDER, FRIEND).await;

    let location = wa::Message {
        location_message: MessageField::some(m::LocationMessage {
            degrees_latitude: Some(-6.2),
            degrees_longitude: Some(106.8),
            name: Some("Toko Maju".into()),
            address: Some("Jl. Sudirman 1".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (data, stored) = arrives(&gw, &sim, id, &secret, location).await;
    assert_eq!(data["kind"], "location", "{data}");
    assert_eq!(data["location"]["latitude"], -6.2, "{data}");
    assert_eq!(data["location"]["name"], "Toko Maju", "{data}");
    assert_eq!(data["location"]["live"], false, "{data}");
    assert_eq!(data["from_pn"], FRIEND, "{data}");
    assert_eq!(stored["kind"], "location", "{stored}");
    assert_eq!(stored["direction"], "in", "{stored}");
    assert_eq!(stored["location"]["longitude"], 106.8, "{stored}");
    assert_eq!(stored["location"]["address"], "Jl. Sudirman 1", "{stored}");

    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Budi\nTEL;waid=6281111:+62 811 11\nEND:VCARD";
    let card = wa::Message {
        contact_message: MessageField::some(m::ContactMessage {
            display_name: Some("Budi".into()),
            vcard: Some(vcard.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (data, stored) = arrives(&gw, &sim, id, &secret, card).await;
    assert_eq!(data["kind"], "contacts", "{data}");
    assert_eq!(data["contacts"][0]["display_name"], "Budi", "{data}");
    assert_eq!(data["contacts"][0]["vcard"], vcard, "{data}");
    assert_eq!(stored["contacts"][0]["display_name"], "Budi", "{stored}");
    assert!(stored["location"].is_null(), "{stored}");

    let poll = wa::Message {
        poll_creation_message_v3: MessageField::some(m::PollCreationMessage {
            name: Some("Jam buka?".into()),
            options: ["08.00", "09.00"]
                .iter()
                .map(|o| m::poll_creation_message::Option {
                    option_name: Some((*o).into()),
                    ..Default::default()
                })
                .collect(),
            selectable_options_count: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (data, stored) = arrives(&gw, &sim, id, &secret, poll).await;
    assert_eq!(data["kind"], "poll", "{data}");
    assert_eq!(data["poll"]["question"], "Jam buka?", "{data}");
    assert_eq!(data["poll"]["options"][1], "09.00", "{data}");
    assert_eq!(stored["poll"]["selectable"], 1, "{stored}");
    assert_eq!(stored["poll"]["options"][0], "08.00", "{stored}");

    let event = wa::Message {
        event_message: MessageField::some(m::EventMessage {
            name: Some("Rapat".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (data, stored) = arrives(&gw, &sim, id, &secret, event).await;
    assert_eq!(data["kind"], "unknown", "{data}");
    assert_eq!(data["unknown_type"], "eventMessage", "{data}");
    assert_eq!(stored["kind"], "unknown", "{stored}");
}
