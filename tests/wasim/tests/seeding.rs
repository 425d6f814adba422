//! Seeded account state against the bare client: every seeded message is
//! decrypted (1:1 and group), and the seeded app-state patches verify and
//! apply as mutes, archives, pins, labels and label associations.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use wasim::{Seed, Sim, SimEvent};
use whatsapp_rust::prelude::MessageExt;
use whatsapp_rust::types::events::Event;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_account_decrypts_every_message_and_applies_its_app_state() {
    common::init_logs();
    const ME: &str = "6281200000051";
    let sim = Sim::start().await.unwrap();
    let mut c = common::paired(&sim, ME).await;
    let mut events = sim.events();
    if !sim.has_prekeys(ME, 1) {
        Sim::wait_for(&mut events, WAIT, |e| {
            matches!(e, SimEvent::PreKeysUploaded { .. }).then_some(())
        })
        .await
        .unwrap();
    }
    let seed = Seed {
        contacts: 4,
        contact_base: 628_510_000_000,
        groups: 2,
        group_sizes: (3, 5),
        app_state_mutations: 30,
        backlog: 2,
    };
    let seeded = sim.seed(ME, &seed).await.unwrap();
    assert_eq!(seeded.contacts.len(), 4);
    assert_eq!(
        seeded.groups.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        [3, 5]
    );
    assert_eq!(seeded.messages.len(), 4 + 2 + 2);
    assert_eq!(seeded.app_state_mutations, 30);

    let mut waiting: HashSet<String> = seeded.messages.iter().cloned().collect();
    let (mut mutes, mut archives, mut pins, mut labels, mut labelled) = (0, 0, 0, 0, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !waiting.is_empty() || mutes + archives + pins + labels + labelled < 30 {
        let event = tokio::time::timeout_at(deadline, c.events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("left: {waiting:?}, app state {mutes}/{archives}/{pins}/{labels}/{labelled}")
            })
            .unwrap();
        match &*event {
            Event::Messages(batch) => {
                for m in batch.messages.iter() {
                    if waiting.remove(&m.info.id) {
                        assert!(m.message.text_content().is_some(), "{:?}", m.message);
                    }
                }
            }
            Event::MuteUpdate(_) => mutes += 1,
            Event::ArchiveUpdate(_) => archives += 1,
            Event::PinUpdate(_) => pins += 1,
            Event::LabelEditUpdate(_) => labels += 1,
            Event::LabelAssociationUpdate(_) => labelled += 1,
            _ => {}
        }
    }
    // 6 chats (4 contacts, 2 groups): two labels, then each chat muted,
    // archived, pinned and labelled, up to 30 mutations.
    assert_eq!((labels, mutes, archives, pins, labelled), (2, 6, 6, 6, 10));
    sim.wait_acked(ME, WAIT).await.unwrap();
    c.handle.shutdown().await;
}
