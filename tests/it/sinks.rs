//! Broker sinks end to end: NATS JetStream and RabbitMQ destinations
//! registered over the API, fed by the same outbox and dispatcher as
//! webhooks, against real brokers (a private nats-server; the machine's
//! RabbitMQ, behind a proxy where a test needs an outage).

use std::collections::HashSet;
use std::time::Duration;

use poem::http::{HeaderMap as HttpHeaders, HeaderValue};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::brokers::{AmqpQueue, NatsServer, Proxy, RABBITMQ};
use crate::harness::{TestApp, eventually, send};
use crate::webhooks::{attempts, emit, instance, wait_status};

const WITHIN: Duration = Duration::from_secs(20);

/// Retries often and for long enough to outlast a test's outage.
async fn patient_app() -> TestApp {
    TestApp::spawn_with(|f| {
        f.merge(("webhooks.retry_schedule_secs", vec![0.1; 150]))
            .merge(("webhooks.request_timeout_secs", 2.0))
    })
    .await
}

/// Registers a sink; returns its id, secret and the view.
async fn register(app: &TestApp, instance: Uuid, body: Value) -> (Uuid, String, Value) {
    let r = send(
        app.req(Method::POST, &format!("/v1/instances/{instance}/webhooks"))
            .json(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    (
        r.body["id"].as_str().expect("id").parse().expect("uuid"),
        r.body["secret"].as_str().expect("secret").to_owned(),
        r.body,
    )
}

/// Verifies with the `standardwebhooks` crate, as a consumer would.
fn verify(secret: &str, id: &str, timestamp: &str, signature: &str, body: &[u8]) {
    let mut headers = HttpHeaders::new();
    headers.insert("webhook-id", HeaderValue::from_str(id).expect("id"));
    headers.insert(
        "webhook-timestamp",
        HeaderValue::from_str(timestamp).expect("ts"),
    );
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).expect("sig"),
    );
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(body, &headers)
        .unwrap_or_else(|e| panic!("signature does not verify: {e:?}"));
}

/// Every message of the stream, in stream order.
async fn stream_messages(
    nats: &NatsServer,
    stream: &str,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let js = async_nats::jetstream::new(nats.client().await);
    let mut stream = js.get_stream(stream).await.expect("stream");
    let count = stream.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=count {
        out.push(stream.get_raw_message(seq).await.expect("message"));
    }
    out
}

fn nats_header(m: &async_nats::jetstream::message::StreamMessage, name: &str) -> String {
    m.headers
        .get(name)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_else(|| panic!("header {name}"))
}

fn amqp_header(d: &lapin::message::Delivery, name: &str) -> String {
    let headers = d.properties.headers().as_ref().expect("headers");
    match headers.inner().get(name) {
        Some(lapin::types::AMQPValue::LongString(s)) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        other => panic!("header {name}: {other:?}"),
    }
}

/// Waits for a delivery that failed an attempt and waits for its retry.
async fn retrying(app: &TestApp, inst: Uuid, hook: Uuid) -> Value {
    eventually("a delivery failing and retried", || async move {
        let r = send(app.req(
            Method::GET,
            &format!("/v1/instances/{inst}/webhooks/{hook}/deliveries?status=pending&limit=200"),
        ))
        .await;
        r.body["items"]
            .as_array()?
            .iter()
            .find(|d| d["last_error"].is_string())
            .cloned()
    })
    .await
}

fn event_ids(items: &[Value]) -> HashSet<String> {
    items
        .iter()
        .map(|d| d["event_id"].as_str().expect("event id").to_owned())
        .collect()
}

#[tokio::test]
async fn nats_sink_delivers_signed_events_to_jetstream() {
    let nats = NatsServer::start().await;
    let app = TestApp::spawn().await;
    let inst = instance(&app).await;
    let (hook, secret, view) = register(
        &app,
        inst,
        json!({
            "kind": "nats",
            "nats": { "url": nats.url(), "create_stream": true, "stream": "EVENTS" },
        }),
    )
    .await;
    assert_eq!(view["kind"], "nats", "{view}");
    assert_eq!(view["url"], nats.url(), "{view}");
    assert_eq!(view["nats"]["subject"], "wagate.{instance_id}.{type}");
    assert_eq!(view["nats"]["credentials"], false);

    let ids = emit(&app, inst, 5).await;
    wait_status(&app, inst, hook, "succeeded", 5).await;
    let messages = stream_messages(&nats, "EVENTS").await;
    assert_eq!(messages.len(), 5);
    for (m, id) in messages.iter().zip(&ids) {
        assert_eq!(m.subject.as_str(), format!("wagate.{inst}.message.sent"));
        assert_eq!(nats_header(m, "Nats-Msg-Id"), *id);
        assert_eq!(nats_header(m, "webhook-id"), *id);
        assert_eq!(nats_header(m, "wagate-type"), "message.sent");
        let body: Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(body["type"], "message.sent");
        assert_eq!(body["instance_id"], inst.to_string());
        verify(
            &secret,
            id,
            &nats_header(m, "webhook-timestamp"),
            &nats_header(m, "webhook-signature"),
            &m.payload,
        );
    }
}

#[tokio::test]
async fn amqp_sink_publishes_persistent_confirmed_signed_messages() {
    let mut queue = AmqpQueue::bind("wagate.*.message.#").await;
    let app = TestApp::spawn().await;
    let inst = instance(&app).await;
    let (hook, secret, view) = register(
        &app,
        inst,
        json!({
            "amqp": {
                "url": format!("amqp://{RABBITMQ}"),
                "username": "guest",
                "password": "guest",
            },
        }),
    )
    .await;
    assert_eq!(view["kind"], "amqp", "{view}");
    assert_eq!(view["amqp"]["exchange"], "amq.topic");
    assert_eq!(view["amqp"]["credentials"], true);
    let listed = send(app.req(Method::GET, &format!("/v1/instances/{inst}/webhooks"))).await;
    assert!(
        !listed.body.to_string().contains("guest"),
        "credentials are never listed: {}",
        listed.body
    );

    let ids = emit(&app, inst, 5).await;
    wait_status(&app, inst, hook, "succeeded", 5).await;
    let mut seen = Vec::new();
    // The queue may hold other tests' instances' messages.
    while seen.len() < 5 {
        let d = queue.next(WITHIN).await;
        if amqp_header(&d, "instance_id") != inst.to_string() {
            continue;
        }
        let id = d
            .properties
            .message_id()
            .as_ref()
            .expect("message id")
            .to_string();
        assert_eq!(
            d.routing_key.as_str(),
            format!("wagate.{inst}.message.sent")
        );
        assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent");
        assert_eq!(amqp_header(&d, "type"), "message.sent");
        assert_eq!(amqp_header(&d, "webhook-id"), id);
        verify(
            &secret,
            &id,
            &amqp_header(&d, "webhook-timestamp"),
            &amqp_header(&d, "webhook-signature"),
            &d.data,
        );
        seen.push(id);
    }
    assert_eq!(seen, ids);
}

#[tokio::test]
async fn nats_outage_loses_nothing_and_an_ordered_sink_keeps_order() {
    let mut nats = NatsServer::start().await;
    let app = patient_app().await;
    let inst = instance(&app).await;
    let (hook, _, _) = register(
        &app,
        inst,
        json!({
            "ordered": true,
            "nats": { "url": nats.url(), "create_stream": true },
        }),
    )
    .await;
    let mut ids = emit(&app, inst, 5).await;
    wait_status(&app, inst, hook, "succeeded", 5).await;

    nats.stop().await;
    ids.extend(emit(&app, inst, 10).await);
    // The broker is away: attempts fail and are retried.
    let failing = retrying(&app, inst, hook).await;
    let tried = attempts(&app, inst, hook, failing["id"].as_str().expect("id")).await;
    assert_eq!(tried[0]["error_kind"], "connect", "{:?}", tried[0]);

    nats.resume().await;
    let done = wait_status(&app, inst, hook, "succeeded", 15).await;
    assert_eq!(event_ids(&done), ids.iter().cloned().collect());
    let messages = stream_messages(&nats, "WAGATE").await;
    let got: Vec<String> = messages
        .iter()
        .map(|m| nats_header(m, "Nats-Msg-Id"))
        .collect();
    assert_eq!(got, ids, "every event once, in order");
}

#[tokio::test]
async fn amqp_outage_loses_nothing_and_an_ordered_sink_keeps_order() {
    let proxy = Proxy::start(RABBITMQ).await;
    let app = patient_app().await;
    let inst = instance(&app).await;
    let mut queue = AmqpQueue::bind(&format!("wagate.{inst}.#")).await;
    let (hook, _, _) = register(
        &app,
        inst,
        json!({
            "ordered": true,
            "amqp": {
                "url": format!("amqp://{}", proxy.addr()),
                "username": "guest",
                "password": "guest",
            },
        }),
    )
    .await;
    let mut ids = emit(&app, inst, 5).await;
    wait_status(&app, inst, hook, "succeeded", 5).await;

    proxy.cut().await;
    ids.extend(emit(&app, inst, 10).await);
    retrying(&app, inst, hook).await;

    proxy.restore().await;
    let done = wait_status(&app, inst, hook, "succeeded", 15).await;
    assert_eq!(event_ids(&done), ids.iter().cloned().collect());
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let d = queue.next(WITHIN).await;
        let id = d
            .properties
            .message_id()
            .as_ref()
            .expect("message id")
            .to_string();
        // A confirm lost with the connection is published again: at least
        // once, with the same message id.
        if got.last() != Some(&id) {
            got.push(id);
        }
    }
    assert_eq!(got, ids, "every event, in order");
}

#[tokio::test]
async fn a_wrong_login_fails_clearly_without_retrying() {
    let nats = NatsServer::start_with(Some(("wagate", "right"))).await;
    let app = patient_app().await;
    let inst = instance(&app).await;
    let (nats_hook, _, _) = register(
        &app,
        inst,
        json!({ "nats": {
            "url": nats.url(), "create_stream": true,
            "username": "wagate", "password": "wrong",
        }}),
    )
    .await;
    let (amqp_hook, _, _) = register(
        &app,
        inst,
        json!({ "amqp": {
            "url": format!("amqp://{RABBITMQ}"),
            "username": "guest", "password": "wrong",
        }}),
    )
    .await;
    emit(&app, inst, 3).await;
    for hook in [nats_hook, amqp_hook] {
        let failed = wait_status(&app, inst, hook, "failed", 3).await;
        for d in &failed {
            let a = attempts(&app, inst, hook, d["id"].as_str().expect("id")).await;
            assert_eq!(a.len(), 1, "one attempt, no retries: {a:?}");
            assert_eq!(a[0]["error_kind"], "auth", "{:?}", a[0]);
        }
    }
}

#[tokio::test]
async fn sink_registrations_are_checked() {
    let app = TestApp::spawn().await;
    let inst = instance(&app).await;
    let base = format!("/v1/instances/{inst}/webhooks");
    let bad = |body: Value| app.req(Method::POST, &base).json(&body);
    send(bad(json!({ "kind": "nats" })))
        .await
        .assert_problem(422, "invalid_target");
    send(bad(json!({
        "url": "https://example.com/",
        "nats": { "url": "nats://127.0.0.1:4222" },
    })))
    .await
    .assert_problem(422, "invalid_target");
    send(bad(json!({
        "nats": { "url": "nats://127.0.0.1:4222" },
        "amqp": { "url": "amqp://127.0.0.1" },
    })))
    .await
    .assert_problem(422, "invalid_target");
    send(bad(
        json!({ "kind": "amqp", "nats": { "url": "nats://127.0.0.1" } }),
    ))
    .await
    .assert_problem(422, "invalid_target");
    send(bad(
        json!({ "nats": { "url": "nats://127.0.0.1", "username": "u" } }),
    ))
    .await
    .assert_problem(422, "invalid_target");
    // The document's pattern refuses it at the edge.
    send(bad(
        json!({ "nats": { "url": "nats://127.0.0.1", "subject": "{who}" } }),
    ))
    .await
    .assert_problem(422, "invalid_body");
    let r = send(bad(json!({ "nats": { "url": "http://127.0.0.1" } }))).await;
    assert_eq!(r.status / 100, 4, "{:?}", r.body);

    // Sinks change their target, never their kind.
    let (hook, _, _) = register(
        &app,
        inst,
        json!({ "nats": { "url": "nats://127.0.0.1:4222", "token": "s3cret" } }),
    )
    .await;
    let path = format!("{base}/{hook}");
    send(
        app.req(Method::PATCH, &path)
            .json(&json!({ "url": "https://example.com/" })),
    )
    .await
    .assert_problem(409, "kind_mismatch");
    send(
        app.req(Method::PATCH, &path)
            .json(&json!({ "amqp": { "url": "amqp://127.0.0.1" } })),
    )
    .await
    .assert_problem(409, "kind_mismatch");
    send(app.req(Method::PATCH, &path).json(&json!({
        "nats": { "url": "nats://127.0.0.1:4222" },
        "amqp": { "url": "amqp://127.0.0.1" },
    })))
    .await
    .assert_problem(409, "kind_mismatch");
    let changed = send(app.req(Method::PATCH, &path).json(&json!({
        "nats": { "url": "nats://127.0.0.1:4223", "subject": "crm.{type}" },
    })))
    .await;
    assert_eq!(changed.status, 200, "{:?}", changed.body);
    assert_eq!(changed.body["url"], "nats://127.0.0.1:4223");
    assert_eq!(changed.body["nats"]["subject"], "crm.{type}");
    assert_eq!(changed.body["nats"]["credentials"], false);
}

#[tokio::test]
async fn private_broker_hosts_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|f| f.merge(("allow_private_targets", false))).await;
    let inst = instance(&app).await;
    let base = format!("/v1/instances/{inst}/webhooks");
    for body in [
        json!({ "nats": { "url": "nats://127.0.0.1:4222" } }),
        json!({ "amqp": { "url": "amqp://10.0.0.5/" } }),
    ] {
        send(app.req(Method::POST, &base).json(&body))
            .await
            .assert_problem(422, "url_not_allowed");
    }
}
