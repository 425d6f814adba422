//! The unmodified whatsapp-rust client pairs by QR with the simulator and
//! logs in as the new device.

mod common;

use std::sync::Arc;
use std::time::Duration;

use wasim::Sim;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::store::InMemoryBackend;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_scan_pairs_then_the_device_connects() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    let mut c = common::client(&sim.ws_url(), Arc::new(InMemoryBackend::new())).await;

    let qr = c
        .wait_for(WAIT, |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await;
    let jid = sim.scan_qr(&qr, "6281234567890").unwrap();
    assert_eq!(jid, "6281234567890:1@s.whatsapp.net");

    let paired = c
        .wait_for(WAIT, |e| match e {
            Event::PairSuccess(p) => Some(p.id.to_string()),
            _ => None,
        })
        .await;
    assert_eq!(paired, jid);
    c.wait_for(WAIT, |e| matches!(e, Event::Connected(_)).then_some(()))
        .await;
    assert_eq!(c.client.pn().unwrap().user, "6281234567890");
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_code_entered_on_the_phone_pairs_the_device() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    let mut c = common::client(&sim.ws_url(), Arc::new(InMemoryBackend::new())).await;
    c.client.wait_for_socket(WAIT).await.unwrap();
    let code = c
        .client
        .pair_with_code(whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: "6281234567000".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sim.enter_pair_code(&code).unwrap(), "6281234567000");
    let paired = c
        .wait_for(WAIT, |e| match e {
            Event::PairSuccess(p) => Some(p.id.to_string()),
            _ => None,
        })
        .await;
    assert_eq!(paired, "6281234567000:1@s.whatsapp.net");
    c.wait_for(WAIT, |e| matches!(e, Event::Connected(_)).then_some(()))
        .await;
    c.handle.shutdown().await;
}
