//! Number checks, a real Signal-encrypted send, acks and receipts between
//! the unmodified client and the simulator.

mod common;

use std::time::Duration;

use wasim::{Sim, SimEvent};
use whatsapp_rust::Jid;
use whatsapp_rust::prelude::{MessageBuilderExt, MessageExt, wa};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_checks_sends_and_receipts() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    sim.register_number("6289900000001").unwrap();
    let mut c = common::paired(&sim, "6281200000001").await;

    let checked = c
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn("6289900000001"), Jid::pn("6289900000002")])
        .await
        .unwrap();
    let on = |n: &str| {
        checked
            .iter()
            .find(|r| r.jid.user == n || r.pn_jid.as_ref().is_some_and(|p| p.user == n))
            .is_some_and(|r| r.is_registered)
    };
    assert!(on("6289900000001"), "{checked:?}");
    assert!(!on("6289900000002"), "{checked:?}");

    let mut events = sim.events();
    let sent = c
        .client
        .send_message(Jid::pn("6289900000001"), wa::Message::text("hello"))
        .await
        .unwrap();
    let id = Sim::wait_for(&mut events, WAIT, |e| match e {
        SimEvent::MessageSent { id, .. } => Some(id.clone()),
        _ => None,
    })
    .await
    .unwrap();
    assert_eq!(id, sent.message_id);

    sim.deliver(&id).unwrap();
    c.wait_for(WAIT, |e| match e {
        Event::Receipt(r) if r.message_ids.contains(&id) && r.r#type == ReceiptType::Delivered => {
            Some(())
        }
        _ => None,
    })
    .await;
    sim.read(&id).unwrap();
    c.wait_for(WAIT, |e| match e {
        Event::Receipt(r) if r.message_ids.contains(&id) && r.r#type == ReceiptType::Read => {
            Some(())
        }
        _ => None,
    })
    .await;
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_sends_an_encrypted_text() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    sim.register_number("6289900000011").unwrap();
    let mut c = common::paired(&sim, "6281200000011").await;
    let mut events = sim.events();
    // The first message may only go out once the device's prekeys are up.
    if !sim.has_prekeys("6281200000011", 1) {
        Sim::wait_for(&mut events, WAIT, |e| {
            matches!(e, SimEvent::PreKeysUploaded { .. }).then_some(())
        })
        .await
        .unwrap();
    }

    for text in ["halo", "apa kabar"] {
        let id = sim
            .send_text("6289900000011", "6281200000011", text)
            .await
            .unwrap();
        let got = c
            .wait_for(WAIT, |e| match e {
                Event::Messages(batch) => batch
                    .messages
                    .iter()
                    .find(|m| m.info.id == id)
                    .map(|m| m.message.text_content().map(str::to_owned)),
                _ => None,
            })
            .await;
        assert_eq!(got.as_deref(), Some(text));
    }
    c.handle.shutdown().await;
}
