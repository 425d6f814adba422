//! `GET /metrics`: who may scrape it, the keyless listener, and that the
//! series move when the gateway does something. The recorder is shared by
//! every server in this process, so counters are checked to have moved
//! (never to equal a total) and database gauges are polled.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;
use wagate::app::App;
use wagate::engine::scripted::ScriptedEngine;

use crate::harness::{TestApp, TestDb, eventually, send, settings_with};
use crate::receiver::Receiver;

/// The value of the series whose name and labels are exactly `series`
/// (`name{a="b",c="d"}` as Prometheus prints it), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn scrape(app: &TestApp) -> (u16, String, String) {
    let resp = app
        .req(Method::GET, "/metrics")
        .send()
        .await
        .expect("scrape");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, resp.text().await.expect("body"))
}

#[tokio::test]
async fn only_the_admin_key_scrapes_the_api_address() {
    let app = TestApp::spawn().await;
    let open = send(app.http.get(app.url("/metrics"))).await;
    open.assert_problem(401, "unauthorized");
    let inst = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    let id = inst.body["id"].as_str().expect("id").to_owned();
    let key = send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": [id], "scopes": ["read", "manage"], "name": "m" })),
    )
    .await;
    let key = key.body["key"].as_str().expect("key").to_owned();
    let scoped = send(app.http.get(app.url("/metrics")).bearer_auth(&key)).await;
    scoped.assert_problem(403, "admin_key_required");

    let (status, content_type, text) = scrape(&app).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("# TYPE wagate_instances gauge"), "{text}");
    assert!(
        value(&text, r#"wagate_db_pool_connections{state="idle"}"#).is_some(),
        "{text}"
    );
}

#[tokio::test]
async fn instances_by_status_and_http_requests_by_route() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    }
    let missing = format!("/v1/instances/{}", Uuid::new_v4());
    send(app.req(Method::GET, &missing))
        .await
        .assert_problem(404, "instance_not_found");
    // Other servers in this process set the same gauge when they are
    // scraped: poll until this server's own count shows.
    let text = eventually("three created instances", || async {
        let (_, _, text) = scrape(&app).await;
        (value(&text, r#"wagate_instances{status="created"}"#) == Some(3.0)).then_some(text)
    })
    .await;
    assert_eq!(
        value(&text, r#"wagate_instances{status="online"}"#),
        Some(0.0),
        "every status is listed, zeros too"
    );
    let route =
        r#"wagate_http_requests_total{method="GET",route="/v1/instances/{id}",status="404"}"#;
    assert!(value(&text, route).is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        !text.contains(&missing),
        "no ids in labels: the route template stands for the path"
    );
    assert!(
        text.contains(r#"wagate_http_request_duration_seconds_bucket{method="POST",route="/v1/instances",le="0.005"}"#),
        "latency is a histogram with buckets: {text}"
    );
}

#[tokio::test]
async fn webhook_deliveries_count_their_outcome_and_latency() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    let inst = inst.body["id"].as_str().expect("id").to_owned();
    let hook = send(
        app.req(Method::POST, &format!("/v1/instances/{inst}/webhooks"))
            .json(&json!({ "url": receiver.url("/") })),
    )
    .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);
    let hook = hook.body["id"].as_str().expect("id").to_owned();
    let before = value(
        &scrape(&app).await.2,
        r#"wagate_webhook_attempts_total{outcome="succeeded"}"#,
    )
    .unwrap_or(0.0);
    let test = send(app.req(
        Method::POST,
        &format!("/v1/instances/{inst}/webhooks/{hook}/test"),
    ))
    .await;
    assert_eq!(test.status, 202, "{:?}", test.body);
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let text = eventually("the success counted", || async {
        let (_, _, text) = scrape(&app).await;
        value(
            &text,
            r#"wagate_webhook_attempts_total{outcome="succeeded"}"#,
        )
        .is_some_and(|n| n > before)
        .then_some(text)
    })
    .await;
    assert!(
        value(&text, "wagate_webhook_delivery_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(value(&text, "wagate_webhook_backlog").is_some(), "{text}");
}

#[tokio::test]
async fn metrics_listen_serves_without_a_key() {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f.merge(("metrics.listen", "127.0.0.1:0")));
    let app = App::build(settings, Arc::new(ScriptedEngine::new()))
        .await
        .expect("build");
    let addr = app.metrics_addr().expect("a metrics address");
    let api = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let http = crate::harness::http_client();
    let resp = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    assert!(text.contains("wagate_instances"), "{text}");
    // Only the scrape lives there; the API address still wants the key.
    let other = http
        .get(format!("http://{addr}/v1/instances"))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), 404);
    let api_scrape = http
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(api_scrape.status(), 401);
    drop(stop);
    server.await.expect("join").expect("clean stop");
}

#[test]
fn the_grafana_dashboard_uses_only_series_the_gateway_records() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../ops/grafana/wagate.json")).expect("JSON");
    let recorded = include_str!("../../src/metrics.rs");
    let mut used = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("wagate_") {
                    let name = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    used.push(name.to_owned());
                }
            }
        }
    }
    assert!(used.len() >= 14, "{used:?}");
    for name in used {
        assert!(
            recorded.contains(&format!("\"{name}\"")),
            "{name} is not recorded"
        );
    }
}
