//! The HTTP side for scripts: the control routes and the version file, on
//! the WebSocket's port.

use std::time::Duration;

use serde_json::{Value, json};
use wasim::Sim;

#[tokio::test]
async fn control_routes_drive_the_directory() {
    let sim = Sim::start().await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let added = http
        .post(format!("{}/control/numbers", sim.http_url()))
        .json(&json!({ "phone": "6289900000077" }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let numbers: Value = http
        .get(format!("{}/control/numbers", sim.http_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(numbers, json!(["6289900000077"]));
    assert_eq!(sim.registered_numbers(), ["6289900000077"]);

    let bad = http
        .post(format!("{}/control/scan", sim.http_url()))
        .json(&json!({ "qr": "nonsense", "phone": "1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let sw = http
        .get(format!("{}/sw.js", sim.http_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sw.contains("client_revision"), "{sw}");
}
