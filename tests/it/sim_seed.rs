//! Issue 20's seeding through a real gateway: a number seeded with
//! contacts, groups and app state takes every seeded message in; a seeded
//! contact's message and a seeded group's message (its sender key
//! distributed pairwise first) arrive as decrypted inbound messages.

use std::time::Duration;

use wasim::{Seed, Sim};

use crate::harness::TestDb;
use crate::sim_e2e::{eventually_value, gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_contact_and_a_seeded_group_reach_the_gateway_decrypted() {
    const PHONE: &str = "6281234569701";
    let sim = Sim::start().await.expect("simulator");
    let gw = gateway(TestDb::new().await, &sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair_ready(&sim, id, &secret, PHONE).await;
    let seed = Seed {
        contacts: 12,
        contact_base: 628_520_000_000,
        groups: 2,
        group_sizes: (4, 10),
        app_state_mutations: 60,
        backlog: 3,
    };
    let seeded = sim.seed(PHONE, &seed).await.expect("seeded");
    sim.wait_acked(PHONE, Duration::from_secs(60))
        .await
        .expect("the gateway took every seeded message in");

    let first = &seeded.messages[0];
    let got = gw
        .message_webhook(id, "message.received", &secret, first)
        .await;
    assert_eq!(got["data"]["text"], "halo dari kontak 0", "{got}");
    assert_eq!(got["data"]["from_pn"], seeded.contacts[0], "{got}");

    for (k, (group, members)) in seeded.groups.iter().enumerate() {
        let mid = &seeded.messages[seeded.messages.len() - seeded.groups.len() + k];
        let got = gw
            .message_webhook(id, "message.received", &secret, mid)
            .await;
        let data = &got["data"];
        assert_eq!(data["text"], format!("selamat datang di grup {k}"), "{got}");
        assert_eq!(data["chat"], group.as_str(), "{got}");
        assert_eq!(data["group"]["jid"], group.as_str(), "{got}");
        let sender = data["sender"]["phone_number"].as_str().expect("sender");
        assert!(seeded.contacts.iter().any(|c| c == sender), "{got}");
        assert_eq!(
            sim.group_members(group).map(|m| m.len()),
            Some(*members),
            "{group}"
        );
    }
    // Every seeded message was recorded once: 12 first messages, the
    // backlog of 3 and one per group.
    let received = eventually_value("every seeded message's webhook", || async {
        let n = gw
            .receiver
            .requests()
            .iter()
            .filter(|r| {
                let body = r.json();
                body["type"] == "message.received" && body["instance_id"] == id.to_string()
            })
            .count();
        (n >= seeded.messages.len()).then_some(n)
    })
    .await;
    assert_eq!(received, 12 + 3 + 2);
}
