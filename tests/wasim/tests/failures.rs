//! The world misbehaving: refused logins, slow answers, stream errors.

mod common;

use std::time::{Duration, Instant};

use wasim::{Sim, SimEvent};
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_logs_the_client_out() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    let mut c = common::paired(&sim, "6281200000021").await;
    let mut events = sim.events();

    sim.refuse_logins("6281200000021", Some(401));
    sim.drop_connection("6281200000021", 1).unwrap();
    Sim::wait_for(&mut events, WAIT, |e| {
        matches!(e, SimEvent::LoginRefused { .. }).then_some(())
    })
    .await
    .unwrap();
    c.wait_for(WAIT, |e| matches!(e, Event::LoggedOut(_)).then_some(()))
        .await;
    assert!(!sim.is_online("6281200000021", 1));
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_can_be_delayed() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    sim.register_number("6289900000031").unwrap();
    let c = common::paired(&sim, "6281200000031").await;

    sim.delay(Duration::from_millis(300));
    let started = Instant::now();
    let checked = c
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn("6289900000031")])
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(checked.iter().any(|r| r.is_registered));
    c.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_stream_error_brings_the_client_back() {
    common::init_logs();
    let sim = Sim::start().await.unwrap();
    let _c = common::paired(&sim, "6281200000041").await;
    let mut events = sim.events();

    sim.stream_error("6281200000041", 1, 515).unwrap();
    Sim::wait_for(&mut events, WAIT, |e| {
        matches!(e, SimEvent::LoggedIn { phone, .. } if phone == "6281200000041").then_some(())
    })
    .await
    .unwrap();
}
