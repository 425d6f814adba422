//! Outbound conversations end to end: the gateway process with the real
//! client sends, and the simulated contact's phone decrypts what it got,
//! so each test asserts the content the recipient really received.

use reqwest::Method;
use serde_json::json;
use wasim::{Received, Sim};

use crate::harness::{TestDb, send};
use crate::sim_e2e::{Gateway, contact_has, eventually_value, gateway};

/// What the phone of `phone` received as message `id`; fails past the
/// deadline.
async fn received(sim: &Sim, phone: &str, id: &str) -> Received {
    eventually_value(&format!("{phone} to receive {id}"), || async {
        sim.received(phone).into_iter().find(|r| r.id == id)
    })
    .await
}

/// A gateway with one instance paired as `sender`, and `friend` on
/// WhatsApp. Returns the gateway, the instance id and its webhook secret.
async fn paired(sim: &Sim, sender: &str, friend: &str) -> (Gateway, uuid::Uuid, String) {
    sim.register_number(friend).expect("directory");
    let gw = gateway(TestDb::new().await, sim).await;
    let (id, secret) = gw.new_instance().await;
    gw.pair(sim, id, &secret, sender).await;
    (gw, id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_decrypts_the_text_it_was_sent() {
    const SENDER: &str = "6281234569001";
    const FRIEND: &str = "6281234569002";
    let sim = Sim::start().await.expect("simulator");
    let (gw, _id, _secret) = paired(&sim, SENDER, FRIEND).await;

    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "halo, apa kabar?" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    contact_has(&sim, &mid).await;
    let got = received(&sim, FRIEND, &mid).await;
    assert_eq!(got.from, SENDER);
    assert_eq!(
        got.message.conversation.as_deref(),
        Some("halo, apa kabar?"),
        "{:?}",
        got.message
    );
    // A second message rides the session the first one opened.
    let r = send(
        gw.req(Method::POST, &format!("/send/by-number/{SENDER}"))
            .json(&json!({ "to": FRIEND, "text": "kedua" })),
    )
    .await;
    let mid = r.body["message_id"].as_str().expect("id").to_owned();
    let got = received(&sim, FRIEND, &mid).await;
    assert_eq!(got.message.conversation.as_deref(), Some("kedua"));
}
