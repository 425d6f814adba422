//! Webhooks end to end: registrations over the API, events recorded in the
//! database, deliveries to a real receiver on 127.0.0.1.

use std::time::{Duration, Instant};

use poem::http::{HeaderMap, HeaderValue};
use reqwest::Method;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::webhooks::{EventType, record};

use crate::harness::{TestApp, send};
use crate::receiver::{Answer, Receiver};

const WITHIN: Duration = Duration::from_secs(20);

pub(crate) async fn instance(app: &TestApp) -> Uuid {
    let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").parse().expect("uuid")
}

/// Registers a webhook; returns its id and secret.
async fn register(app: &TestApp, instance: Uuid, body: Value) -> (Uuid, String) {
    let r = send(
        app.req(Method::POST, &format!("/v1/instances/{instance}/webhooks"))
            .json(&body),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    (
        r.body["id"].as_str().expect("id").parse().expect("uuid"),
        r.body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Records events the way the engine does: each in its own transaction,
/// through an outbox, so fresh deliveries go straight to the dispatcher.
/// Returns the event ids in order.
pub(crate) async fn emit(app: &TestApp, instance: Uuid, n: usize) -> Vec<String> {
    let db = app.db.connect().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let txn = db.begin().await.expect("begin");
        let mut outbox = app.webhooks.outbox();
        let id = outbox
            .record(&txn, instance, EventType::MessageSent, json!({ "seq": i }))
            .await
            .expect("record");
        txn.commit().await.expect("commit");
        outbox.committed();
        ids.push(id);
    }
    db.close().await.ok();
    ids
}

/// Records events as pending deliveries only, for the dispatcher's claim
/// query to find (as after a restart), then wakes it.
async fn emit_pending(app: &TestApp, instance: Uuid, n: usize) -> Vec<String> {
    let db = app.db.connect().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let txn = db.begin().await.expect("begin");
        let id = record(&txn, instance, EventType::MessageSent, json!({ "seq": i }))
            .await
            .expect("record");
        txn.commit().await.expect("commit");
        ids.push(id);
    }
    db.close().await.ok();
    app.webhooks.wake();
    ids
}

fn hooks_path(instance: Uuid, webhook: Uuid) -> String {
    format!("/v1/instances/{instance}/webhooks/{webhook}")
}

/// Polls the deliveries list until `count` are in `status`.
pub(crate) async fn wait_status(
    app: &TestApp,
    instance: Uuid,
    webhook: Uuid,
    status: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let r = send(app.req(
            Method::GET,
            &format!(
                "{}/deliveries?status={status}&limit=200",
                hooks_path(instance, webhook)
            ),
        ))
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let items = r.body["items"].as_array().expect("items").clone();
        if items.len() >= count {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{count} deliveries {status} expected; have {}",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn attempts(
    app: &TestApp,
    instance: Uuid,
    webhook: Uuid,
    delivery: &str,
) -> Vec<Value> {
    let r = send(app.req(
        Method::GET,
        &format!(
            "{}/deliveries/{delivery}/attempts",
            hooks_path(instance, webhook)
        ),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().expect("items").clone()
}

/// Verifies a request with the `standardwebhooks` crate, which nobody here
/// wrote, using only the given signature entry.
fn verify(secret: &str, req: &crate::receiver::Recorded, signature: &str) {
    let mut headers = HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp"] {
        headers.insert(name, req.headers[name].clone());
    }
    headers.insert(
        "webhook-signature",
        HeaderValue::from_str(signature).expect("header"),
    );
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(&req.body, &headers)
        .unwrap_or_else(|e| panic!("signature {signature} does not verify: {e:?}"));
}

#[tokio::test]
async fn registrations_and_validation() {
    let app = TestApp::spawn().await;
    let inst = instance(&app).await;
    let base = format!("/v1/instances/{inst}/webhooks");

    let created = send(app.req(Method::POST, &base).json(&json!({
        "url": "https://example.com/hook",
        "events": ["message.sent", "instance.qr", "message.sent"],
        "description": "crm",
    })))
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let secret = created.body["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        created.body["events"],
        json!(["message.sent", "instance.qr"])
    );
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["ordered"], false);
    let id = created.body["id"].as_str().expect("id");

    let listed = send(app.req(Method::GET, &base)).await;
    assert_eq!(listed.status, 200);
    let items = listed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert!(items[0].get("secret").is_none(), "no secret in lists");

    let got = send(app.req(Method::GET, &format!("{base}/{id}"))).await;
    assert!(got.body.get("secret").is_none());
    let revealed = send(app.req(Method::GET, &format!("{base}/{id}/secret"))).await;
    assert_eq!(revealed.body["secret"], secret);

    let patched = send(
        app.req(Method::PATCH, &format!("{base}/{id}"))
            .json(&json!({
                "events": [],
                "description": null,
                "enabled": false,
            })),
    )
    .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["events"], json!([]));
    assert!(patched.body["description"].is_null());
    assert_eq!(patched.body["enabled"], false);
    assert!(patched.body["disabled_reason"].is_string());
    let reenabled = send(
        app.req(Method::PATCH, &format!("{base}/{id}"))
            .json(&json!({"enabled": true})),
    )
    .await;
    assert!(reenabled.body["disabled_reason"].is_null());

    // Validation.
    for (body, code) in [
        // The document's pattern and enum refuse these.
        (json!({"url": "ftp://example.com/x"}), "invalid_body"),
        (json!({"url": "not a url"}), "invalid_body"),
        (json!({"url": "http://"}), "invalid_body"),
        (
            json!({"url": "https://example.com", "events": ["message.exploded"]}),
            "invalid_body",
        ),
        (json!({"url": "0"}), "invalid_body"),
        (
            json!({"url": "https://example.com", "secret": "x"}),
            "invalid_body",
        ),
        // `url` is optional in the document (sinks have none); a webhook
        // without one is refused by the server.
        (json!({"events": []}), "invalid_url"),
        (
            json!({"url": "https://example.com", "description": "d".repeat(501)}),
            "invalid_body",
        ),
    ] {
        send(app.req(Method::POST, &base).json(&body))
            .await
            .assert_problem(422, code);
    }
    send(
        app.req(Method::PATCH, &format!("{base}/{id}"))
            .json(&json!({"events": ["nope"]})),
    )
    .await
    .assert_problem(422, "invalid_body");

    let missing = Uuid::now_v7();
    send(
        app.req(Method::POST, &format!("/v1/instances/{missing}/webhooks"))
            .json(&json!({"url": "https://example.com"})),
    )
    .await
    .assert_problem(404, "instance_not_found");
    send(app.req(Method::GET, &format!("/v1/instances/{missing}/webhooks")))
        .await
        .assert_problem(404, "instance_not_found");
    send(app.req(Method::GET, &format!("{base}/{missing}")))
        .await
        .assert_problem(404, "webhook_not_found");
    send(app.http.get(app.url(&base)))
        .await
        .assert_problem(401, "unauthorized");

    let deleted = send(app.req(Method::DELETE, &format!("{base}/{id}"))).await;
    assert_eq!(deleted.status, 204);
    send(app.req(Method::GET, &format!("{base}/{id}")))
        .await
        .assert_problem(404, "webhook_not_found");
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(|f| {
        f.merge(("allow_private_targets", false))
            .merge(("allowed_targets", vec!["127.0.0.2/32"]))
    })
    .await;
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let inst = instance(&app).await;
    let base = format!("/v1/instances/{inst}/webhooks");
    for url in [
        receiver.url("/"),
        format!("http://[::1]:{port}/"),
        "http://10.0.0.1/x".to_owned(),
        "http://172.16.0.1/x".to_owned(),
        "http://192.168.1.1/x".to_owned(),
        "http://169.254.169.254/latest".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://[::ffff:10.0.0.1]/".to_owned(),
        format!("http://0.0.0.0:{port}/"),
    ] {
        let r = send(app.req(Method::POST, &base).json(&json!({ "url": url }))).await;
        assert_eq!(r.status, 422, "{url}: {:?}", r.body);
        r.assert_problem(422, "url_not_allowed");
    }
    // A name that resolves to loopback passes registration but never
    // reaches it: the resolver refuses the address.
    let url = format!("http://localhost:{port}/");
    let (by_name, _) = register(&app, inst, json!({ "url": url })).await;
    // An allowed host that redirects to loopback: redirects are never
    // followed, so the receiver behind it hears nothing.
    let bouncer = redirector("127.0.0.2", receiver.url("/")).await;
    let (bounced, _) = register(&app, inst, json!({ "url": format!("http://{bouncer}/") })).await;
    emit(&app, inst, 1).await;
    // Blocked is final; a redirect is retried until the schedule runs out.
    for (hook, end, kind) in [
        (by_name, "failed", "blocked"),
        (bounced, "dead", "redirect"),
    ] {
        let failed = wait_status(&app, inst, hook, end, 1).await;
        let tried = attempts(&app, inst, hook, failed[0]["id"].as_str().expect("id")).await;
        assert_eq!(tried[0]["error_kind"], kind, "{tried:?}");
    }
    assert!(receiver.requests().is_empty());
}

/// A server on `ip` that answers every request with a redirect to `to`.
async fn redirector(ip: &str, to: String) -> std::net::SocketAddr {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let acceptor = TcpListener::bind(format!("{ip}:0"))
        .into_acceptor()
        .await
        .expect("bind");
    let addr = acceptor.local_addr()[0]
        .as_socket_addr()
        .copied()
        .expect("addr");
    let app = poem::endpoint::make_sync(move |_| poem::web::Redirect::temporary(to.clone()));
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    addr
}

#[tokio::test]
async fn delivers_signed_events() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, secret) = register(&app, inst, json!({ "url": receiver.url("/hook") })).await;
    let ids = emit(&app, inst, 1).await;

    let got = receiver.wait_for(1, WITHIN).await;
    let req = &got[0];
    assert_eq!(req.path, "/hook");
    assert_eq!(req.header("webhook-id"), ids[0]);
    assert_eq!(req.header("content-type"), "application/json");
    let sig = req.header("webhook-signature");
    assert!(sig.starts_with("v1,") && !sig.contains(' '), "{sig}");
    verify(&secret, req, sig);
    let ts: i64 = req.header("webhook-timestamp").parse().expect("timestamp");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let body = req.json();
    assert_eq!(body["type"], "message.sent");
    assert_eq!(body["instance_id"], inst.to_string());
    assert_eq!(body["data"], json!({"seq": 0}));
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339");
    assert_eq!(body.as_object().expect("object").len(), 4);

    let done = wait_status(&app, inst, hook, "succeeded", 1).await;
    assert_eq!(done[0]["event_id"], ids[0]);
    assert_eq!(done[0]["event_type"], "message.sent");
    assert_eq!(done[0]["attempts"], 1);
    let tried = attempts(&app, inst, hook, done[0]["id"].as_str().expect("id")).await;
    assert_eq!(tried.len(), 1);
    assert_eq!(tried[0]["status_code"], 200);
    assert_eq!(tried[0]["response_body"], "answered 200");

    // The catch-up cursor returns the same event.
    let events = send(app.req(Method::GET, &format!("/v1/instances/{inst}/events"))).await;
    assert_eq!(events.body["items"][0]["id"], ids[0]);
    assert_eq!(events.body["items"][0]["type"], "message.sent");
}

#[tokio::test]
async fn filters_pick_event_types() {
    let app = TestApp::spawn().await;
    let all = Receiver::start().await;
    let some = Receiver::start().await;
    let inst = instance(&app).await;
    register(&app, inst, json!({ "url": all.url("/") })).await;
    register(
        &app,
        inst,
        json!({ "url": some.url("/"), "events": ["instance.qr"] }),
    )
    .await;
    emit(&app, inst, 1).await;
    let db = app.db.connect().await;
    let txn = db.begin().await.expect("begin");
    record(&txn, inst, EventType::InstanceQr, json!({"qr": "x"}))
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    app.webhooks.wake();
    all.wait_for(2, WITHIN).await;
    let got = some.wait_for(1, WITHIN).await;
    assert_eq!(got[0].json()["type"], "instance.qr");
    assert_eq!(some.requests().len(), 1);
}

#[tokio::test]
async fn rotation_signs_with_both_secrets() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, old) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    let rotated = send(app.req(
        Method::POST,
        &format!("{}/rotate-secret", hooks_path(inst, hook)),
    ))
    .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated.body["previous_secret"], old);

    emit(&app, inst, 1).await;
    let got = receiver.wait_for(1, WITHIN).await;
    let sigs: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    verify(&new, &got[0], sigs[0]);
    verify(&old, &got[0], sigs[1]);

    // Without overlap the old secret retires at once.
    let rotated = send(app.req(
        Method::POST,
        &format!("{}/rotate-secret?overlap_secs=0", hooks_path(inst, hook)),
    ))
    .await;
    let newest = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert!(rotated.body["previous_secret"].is_null());
    emit(&app, inst, 1).await;
    let got = receiver.wait_for(2, WITHIN).await;
    let sig = got[1].header("webhook-signature");
    assert!(!sig.contains(' '));
    verify(&newest, &got[1], sig);
}

#[tokio::test]
async fn failure_then_success_keeps_the_id() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.script([Answer::Status(500), Answer::RetryAfter(503, 0)]);
    let inst = instance(&app).await;
    let (hook, secret) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    let ids = emit(&app, inst, 1).await;
    let got = receiver.wait_for(3, WITHIN).await;
    for req in &got {
        assert_eq!(req.header("webhook-id"), ids[0]);
        assert_eq!(req.body, got[0].body, "identical body on every retry");
        verify(&secret, req, req.header("webhook-signature"));
    }
    let done = wait_status(&app, inst, hook, "succeeded", 1).await;
    assert_eq!(done[0]["attempts"], 3);
    let tried = attempts(&app, inst, hook, done[0]["id"].as_str().expect("id")).await;
    let codes: Vec<&Value> = tried.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(503), &json!(200)]);
    assert_eq!(tried[0]["error_kind"], "status");
    assert_eq!(tried[0]["attempt"], 1);
    assert_eq!(tried[2]["attempt"], 3);
}

#[tokio::test]
async fn receiver_down_then_up() {
    let app = TestApp::spawn().await;
    // A port nobody listens on: take one and free it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let inst = instance(&app).await;
    let (hook, _) = register(
        &app,
        inst,
        json!({ "url": format!("http://127.0.0.1:{port}/") }),
    )
    .await;
    let ids = emit(&app, inst, 1).await;
    let dead = wait_status(&app, inst, hook, "dead", 1).await;
    let tried = attempts(&app, inst, hook, dead[0]["id"].as_str().expect("id")).await;
    assert_eq!(tried.len(), 4, "one attempt per schedule entry");
    assert!(
        tried.iter().all(|a| a["error_kind"] == "connect"),
        "{tried:?}"
    );

    // Up again: replay delivers with the same id.
    let receiver = Receiver::start().await;
    send(
        app.req(Method::PATCH, &hooks_path(inst, hook))
            .json(&json!({ "url": receiver.url("/") })),
    )
    .await;
    let replayed = send(app.req(
        Method::POST,
        &format!(
            "{}/deliveries/{}/replay",
            hooks_path(inst, hook),
            dead[0]["id"].as_str().expect("id")
        ),
    ))
    .await;
    assert_eq!(replayed.status, 202, "{:?}", replayed.body);
    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(got[0].header("webhook-id"), ids[0]);
    wait_status(&app, inst, hook, "succeeded", 1).await;
}

#[tokio::test]
async fn dead_after_the_schedule_then_replayed() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Answer::Status(500));
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    let ids = emit(&app, inst, 1).await;
    let dead = wait_status(&app, inst, hook, "dead", 1).await;
    assert_eq!(dead[0]["attempts"], 4);
    assert_eq!(dead[0]["last_status_code"], 500);
    assert_eq!(receiver.requests().len(), 4);

    receiver.set_default(Answer::Status(204));
    let path = format!(
        "{}/deliveries/{}/replay",
        hooks_path(inst, hook),
        dead[0]["id"].as_str().expect("id")
    );
    let replayed = send(app.req(Method::POST, &path)).await;
    assert_eq!(replayed.status, 202);
    let got = receiver.wait_for(5, WITHIN).await;
    assert_eq!(got[4].header("webhook-id"), ids[0]);
    let done = wait_status(&app, inst, hook, "succeeded", 1).await;
    assert_eq!(done[0]["attempts"], 1, "replay starts a fresh schedule");
    let tried = attempts(&app, inst, hook, done[0]["id"].as_str().expect("id")).await;
    assert_eq!(tried.len(), 5, "the log keeps every attempt");
}

#[tokio::test]
async fn timeouts_are_retried() {
    let app = TestApp::spawn_with(|f| {
        f.merge(("webhooks.request_timeout_secs", 0.3))
            .merge(("webhooks.lease_secs", 5.0))
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script([Answer::Hang]);
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    emit(&app, inst, 1).await;
    let done = wait_status(&app, inst, hook, "succeeded", 1).await;
    let tried = attempts(&app, inst, hook, done[0]["id"].as_str().expect("id")).await;
    assert_eq!(tried.len(), 2);
    assert_eq!(tried[0]["error_kind"], "timeout", "{tried:?}");
    assert!(tried[0]["status_code"].is_null());
    assert_eq!(tried[1]["status_code"], 200);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = TestApp::spawn().await;
    let target = Receiver::start().await;
    let redirector = Receiver::start().await;
    redirector.set_default(Answer::Redirect(target.url("/stolen")));
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": redirector.url("/") })).await;
    emit(&app, inst, 1).await;
    let dead = wait_status(&app, inst, hook, "dead", 1).await;
    let tried = attempts(&app, inst, hook, dead[0]["id"].as_str().expect("id")).await;
    assert!(
        tried
            .iter()
            .all(|a| a["status_code"] == 302 && a["error_kind"] == "redirect"),
        "{tried:?}"
    );
    assert!(target.requests().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn gone_disables_tells_the_others_and_recovers() {
    let app = TestApp::spawn().await;
    let gone = Receiver::start().await;
    gone.set_default(Answer::Status(410));
    let other = Receiver::start().await;
    let inst = instance(&app).await;
    let (gone_id, _) = register(&app, inst, json!({ "url": gone.url("/") })).await;
    let (other_id, _) = register(&app, inst, json!({ "url": other.url("/") })).await;
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let ids = emit(&app, inst, 1).await;

    let got = other.wait_for(2, WITHIN).await;
    let disabled = got
        .iter()
        .find(|r| r.json()["type"] == "endpoint.disabled")
        .expect("endpoint.disabled event");
    assert_eq!(disabled.json()["data"]["webhook_id"], gone_id.to_string());
    assert!(
        disabled.json()["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    let hook = send(app.req(Method::GET, &hooks_path(inst, gone_id))).await;
    assert_eq!(hook.body["enabled"], false);
    assert!(
        hook.body["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{:?}",
        hook.body
    );
    assert!(hook.body["failing_since"].is_string());
    assert_eq!(gone.requests().len(), 1, "410 is not retried");
    let failed = wait_status(&app, inst, gone_id, "failed", 1).await;
    assert_eq!(failed[0]["last_status_code"], 410);
    wait_status(&app, inst, other_id, "succeeded", 2).await;

    // Events recorded while disabled are not owed to it.
    emit(&app, inst, 1).await;
    other.wait_for(3, WITHIN).await;

    // Re-enable, then recover what failed.
    gone.set_default(Answer::Status(200));
    let enabled = send(
        app.req(Method::PATCH, &hooks_path(inst, gone_id))
            .json(&json!({"enabled": true})),
    )
    .await;
    assert!(enabled.body["disabled_reason"].is_null());
    let recovered = send(app.req(
        Method::POST,
        &format!(
            "{}/recover?since={}",
            hooks_path(inst, gone_id),
            started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    ))
    .await;
    assert_eq!(recovered.status, 202, "{:?}", recovered.body);
    assert_eq!(recovered.body["recovered"], 1);
    let got = gone.wait_for(2, WITHIN).await;
    assert_eq!(got[1].header("webhook-id"), ids[0]);
}

#[tokio::test]
async fn failing_for_the_period_disables() {
    let app = TestApp::spawn_with(|f| {
        f.merge(("webhooks.disable_after_failing_secs", 0))
            .merge(("webhooks.retry_schedule_secs", vec![0.0, 0.05, 0.05, 0.05]))
    })
    .await;
    let failing = Receiver::start().await;
    failing.set_default(Answer::Status(500));
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": failing.url("/") })).await;
    emit(&app, inst, 1).await;
    let deadline = Instant::now() + WITHIN;
    loop {
        let got = send(app.req(Method::GET, &hooks_path(inst, hook))).await;
        if got.body["enabled"] == false {
            assert!(
                got.body["disabled_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("failed since")),
                "{:?}",
                got.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "never disabled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_others() {
    hanging_endpoint_case(emit).await;
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_others_claimed() {
    hanging_endpoint_case(emit_pending).await;
}

/// Events reach the fast endpoint while the hanging one holds its slots,
/// whether `record` hands them to the dispatcher or leaves them to claim.
async fn hanging_endpoint_case<F>(record: F)
where
    F: for<'a> AsyncFnOnce(&'a TestApp, Uuid, usize) -> Vec<String>,
{
    let app = TestApp::spawn_with(|f| {
        f.merge(("webhooks.request_timeout_secs", 60.0))
            .merge(("webhooks.lease_secs", 120.0))
            .merge(("webhooks.max_in_flight", 8))
            .merge(("webhooks.max_in_flight_per_webhook", 2))
    })
    .await;
    let hanging = Receiver::start().await;
    hanging.set_default(Answer::Hang);
    let fast = Receiver::start().await;
    let inst = instance(&app).await;
    register(&app, inst, json!({ "url": hanging.url("/") })).await;
    register(&app, inst, json!({ "url": fast.url("/") })).await;
    let started = Instant::now();
    record(&app, inst, 30).await;
    fast.wait_for(30, Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    // The hanging one holds at most its own share of slots.
    assert_eq!(hanging.requests().len(), 2);
}

#[tokio::test]
async fn ordered_webhook_receives_events_in_order_despite_failures() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    // Every third request fails: at most one failure in a row, well within
    // the schedule.
    receiver.script((0..200).map(|i| {
        if i % 3 == 1 {
            Answer::Status(if i % 2 == 0 { 500 } else { 429 })
        } else {
            Answer::Status(200)
        }
    }));
    let inst = instance(&app).await;
    let (hook, _) = register(
        &app,
        inst,
        json!({ "url": receiver.url("/"), "ordered": true }),
    )
    .await;
    let ids = emit(&app, inst, 50).await;
    wait_status(&app, inst, hook, "succeeded", 50).await;

    let got = receiver.requests();
    let mut delivered = Vec::new();
    for (i, req) in got.iter().enumerate() {
        let id = req.header("webhook-id").to_owned();
        let failed = i % 3 == 1;
        if failed {
            // The next request retries the same event: nothing overtakes it.
            assert_eq!(got[i + 1].header("webhook-id"), id, "request {i}");
        } else {
            delivered.push(id);
        }
    }
    assert_eq!(delivered, ids, "delivered in event order, each once");
}

#[tokio::test]
async fn test_event_and_catch_up_cursor() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let other = instance(&app).await;
    let (hook, _) = register(
        &app,
        inst,
        json!({ "url": receiver.url("/"), "events": ["message.read"] }),
    )
    .await;
    let sent = send(app.req(Method::POST, &format!("{}/test", hooks_path(inst, hook)))).await;
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let got = receiver.wait_for(1, WITHIN).await;
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(got[0].header("webhook-id"), sent.body["event_id"]);

    let mut ids = vec![sent.body["event_id"].as_str().expect("id").to_owned()];
    ids.extend(emit(&app, inst, 4).await);
    emit(&app, other, 2).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/instances/{inst}/events?limit=2&after={a}"),
            None => format!("/v1/instances/{inst}/events?limit=2"),
        };
        let page = send(app.req(Method::GET, &path)).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        for e in page.body["items"].as_array().expect("items") {
            assert_eq!(e["instance_id"], inst.to_string());
            seen.push(e["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    send(app.req(
        Method::GET,
        &format!("/v1/instances/{}/events", Uuid::now_v7()),
    ))
    .await
    .assert_problem(404, "instance_not_found");
}

#[tokio::test]
async fn deleting_a_webhook_mid_delivery_spares_the_others() {
    let app = TestApp::spawn().await;
    let slow = Receiver::start().await;
    slow.set_default(Answer::Slow(200, 300));
    let inst = instance(&app).await;
    let (doomed, _) = register(&app, inst, json!({ "url": slow.url("/a") })).await;
    let (kept, _) = register(&app, inst, json!({ "url": slow.url("/b") })).await;
    emit(&app, inst, 1).await;
    slow.wait_for(2, WITHIN).await;
    let deleted = send(app.req(Method::DELETE, &hooks_path(inst, doomed))).await;
    assert_eq!(deleted.status, 204);
    let done = wait_status(&app, inst, kept, "succeeded", 1).await;
    assert_eq!(done[0]["attempts"], 1);
    assert_eq!(slow.requests().len(), 2, "nothing was attempted twice");
}

/// The official Python `standardwebhooks` package verifies our requests,
/// both signatures of a rotation included. `.ci/run` installs it and names
/// the interpreter in `WAGATE_TEST_PYTHON`; elsewhere the test is skipped
/// unless CI is set.
#[tokio::test]
async fn python_standardwebhooks_verifies_our_requests() {
    let Some(python) = std::env::var_os("WAGATE_TEST_PYTHON") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must set WAGATE_TEST_PYTHON"
        );
        eprintln!("skipped: WAGATE_TEST_PYTHON is not set");
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/verify_webhook.py");
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, old) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    emit(&app, inst, 1).await;
    let rotated = send(app.req(
        Method::POST,
        &format!("{}/rotate-secret", hooks_path(inst, hook)),
    ))
    .await;
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    emit(&app, inst, 1).await;
    let got = receiver.wait_for(2, WITHIN).await;

    let check = |secret: &str, req: &crate::receiver::Recorded, signature: &str| {
        use std::io::Write;
        let input = json!({
            "secret": secret,
            "headers": {
                "webhook-id": req.header("webhook-id"),
                "webhook-timestamp": req.header("webhook-timestamp"),
                "webhook-signature": signature,
            },
            "body": String::from_utf8(req.body.clone()).expect("utf-8"),
        });
        let mut child = std::process::Command::new(&python)
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run python");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.to_string().as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("python exits");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check(&old, &got[0], got[0].header("webhook-signature"));
    assert!(ok, "{err}");
    let sigs: Vec<&str> = got[1].header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2);
    let (ok, err) = check(&new, &got[1], sigs[0]);
    assert!(ok, "new secret: {err}");
    let (ok, err) = check(&old, &got[1], sigs[1]);
    assert!(ok, "old secret: {err}");
    // And a wrong secret does not verify.
    let (ok, _) = check(&new, &got[1], sigs[1]);
    assert!(!ok, "a signature verifies only with its own secret");
}

#[tokio::test]
async fn retention_purges_old_events_with_their_deliveries() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    emit(&app, inst, 3).await;
    wait_status(&app, inst, hook, "succeeded", 3).await;
    let db = app.db.connect().await;
    let purged = wagate::webhooks::ops::purge_events(
        &db,
        chrono::Utc::now() + chrono::Duration::seconds(1),
        chrono::Utc::now() + chrono::Duration::seconds(1),
    )
    .await
    .expect("purge");
    assert_eq!(purged, 3);
    db.close().await.ok();
    let events = send(app.req(Method::GET, &format!("/v1/instances/{inst}/events"))).await;
    assert_eq!(events.body["items"], json!([]));
    let left = send(app.req(
        Method::GET,
        &format!("{}/deliveries", hooks_path(inst, hook)),
    ))
    .await;
    assert_eq!(left.body["items"], json!([]));
}

#[tokio::test]
async fn events_with_a_dead_delivery_are_kept_longer() {
    let app = TestApp::spawn().await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_default(Answer::Status(500));
    let (a, b) = (instance(&app).await, instance(&app).await);
    register(&app, a, json!({ "url": good.url("/") })).await;
    let (hook_b, _) = register(&app, b, json!({ "url": bad.url("/") })).await;
    emit(&app, a, 2).await;
    emit(&app, b, 1).await;
    wait_status(&app, b, hook_b, "dead", 1).await;
    good.wait_for(2, WITHIN).await;

    let db = app.db.connect().await;
    let now = chrono::Utc::now();
    let soon = now + chrono::Duration::seconds(1);
    let long_ago = now - chrono::Duration::days(60);
    let purged = wagate::webhooks::ops::purge_events(&db, soon, long_ago)
        .await
        .expect("purge");
    assert_eq!(purged, 2, "only the delivered events go");
    let kept = send(app.req(Method::GET, &format!("/v1/instances/{b}/events"))).await;
    assert_eq!(kept.body["items"].as_array().map(Vec::len), Some(1));
    let purged = wagate::webhooks::ops::purge_events(&db, soon, soon)
        .await
        .expect("purge");
    assert_eq!(purged, 1, "past its own cutoff the dead one goes too");
    db.close().await.ok();
}

#[tokio::test]
async fn global_webhooks_receive_every_instance_events() {
    let app = TestApp::spawn().await;
    let global = Receiver::start().await;
    let own = Receiver::start().await;
    let (a, b) = (instance(&app).await, instance(&app).await);
    let created = send(
        app.req(Method::POST, "/v1/webhooks")
            .json(&json!({ "url": global.url("/all") })),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert!(created.body["instance_id"].is_null());
    let secret = created.body["secret"].as_str().expect("secret").to_owned();
    let gid = created.body["id"].as_str().expect("id").to_owned();
    let (own_id, _) = register(&app, a, json!({ "url": own.url("/a") })).await;

    let mut ids = emit(&app, a, 1).await;
    ids.extend(emit(&app, b, 1).await);
    let got = global.wait_for(2, WITHIN).await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    for r in &got {
        verify(&secret, r, r.header("webhook-signature"));
    }
    own.wait_for(1, WITHIN).await;

    // Listed apart; not reachable through an instance, nor the other way.
    let listed = send(app.req(Method::GET, "/v1/webhooks")).await;
    assert_eq!(listed.body["items"].as_array().expect("items").len(), 1);
    let own_list = send(app.req(Method::GET, &format!("/v1/instances/{a}/webhooks"))).await;
    assert_eq!(own_list.body["items"].as_array().expect("items").len(), 1);
    send(app.req(Method::GET, &format!("/v1/instances/{a}/webhooks/{gid}")))
        .await
        .assert_problem(404, "webhook_not_found");
    send(app.req(Method::GET, &format!("/v1/webhooks/{own_id}")))
        .await
        .assert_problem(404, "webhook_not_found");

    let deadline = Instant::now() + WITHIN;
    loop {
        let page = send(app.req(
            Method::GET,
            &format!("/v1/webhooks/{gid}/deliveries?status=succeeded"),
        ))
        .await;
        if page.body["items"].as_array().map_or(0, Vec::len) == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", page.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deleted = send(app.req(Method::DELETE, &format!("/v1/webhooks/{gid}"))).await;
    assert_eq!(deleted.status, 204);
}

#[tokio::test]
async fn a_hand_off_lost_after_its_commit_is_delivered_after_the_lease() {
    let app = TestApp::spawn_with(|f| {
        f.merge(("webhooks.request_timeout_secs", 0.5))
            .merge(("webhooks.lease_secs", 1.0))
            .merge(("webhooks.sweep_interval_secs", 0.2))
            // The scheduler's sweep gives expired claims back.
            .merge(("scheduler.webhook_sweep_cron", "* * * * * *"))
    })
    .await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    // Once one hand-off has arrived, the dispatcher is taking hand-offs.
    emit(&app, inst, 1).await;
    receiver.wait_for(1, WITHIN).await;

    let db = app.db.connect().await;
    let txn = db.begin().await.expect("begin");
    let mut outbox = app.webhooks.outbox();
    let event = outbox
        .record(&txn, inst, EventType::MessageSent, json!({ "lost": true }))
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    // The process dies between the commit and the hand-off.
    drop(outbox);
    use entity::webhook_deliveries::{Column, Entity, Status};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let row = Entity::find()
        .filter(Column::EventId.eq(&event))
        .one(&db)
        .await
        .expect("query")
        .expect("the delivery");
    db.close().await.ok();
    assert_eq!(row.status, Status::Delivering, "claimed when recorded");
    assert!(row.claim_token.is_some());

    let got = receiver.wait_for(2, WITHIN).await;
    assert_eq!(got[1].header("webhook-id"), event);
    let done = wait_status(&app, inst, hook, "succeeded", 2).await;
    assert!(done.iter().any(|d| d["event_id"] == event.as_str()));
}

#[tokio::test]
async fn the_view_shows_the_adaptive_limit_cut_by_a_503() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.script([Answer::Status(503)]);
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    let path = hooks_path(inst, hook);
    let view = send(app.req(Method::GET, &path)).await;
    assert_eq!(view.body["concurrency_limit"], 8, "{:?}", view.body);
    emit(&app, inst, 1).await;
    // The retry succeeds, but one 2xx with nothing waiting earns nothing.
    wait_status(&app, inst, hook, "succeeded", 1).await;
    let view = send(app.req(Method::GET, &path)).await;
    assert_eq!(view.body["concurrency_limit"], 4, "{:?}", view.body);
}

/// Open deliveries in the due queue (all of them, any instance).
async fn due_rows(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let db = app.db.connect().await;
    let n = entity::webhook_due::Entity::find()
        .count(&db)
        .await
        .expect("count");
    db.close().await.ok();
    n
}

async fn wait_due(app: &TestApp, want: u64) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let n = due_rows(app).await;
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} rows in the due queue, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn single_event_writes_commit_together_and_fail_alone() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    let db = app.db.connect().await;
    let mut writers = Vec::new();
    for i in 0..16 {
        let (db, hooks) = (db.clone(), app.webhooks.clone());
        writers.push(tokio::spawn(async move {
            hooks
                .write(&db, async |txn, outbox| {
                    let id = outbox
                        .record(txn, inst, EventType::MessageSent, json!({ "seq": i }))
                        .await?;
                    if i == 5 {
                        return Err(sea_orm::DbErr::Custom("this one fails".into()));
                    }
                    Ok(id)
                })
                .await
        }));
    }
    let mut committed = Vec::new();
    for (i, w) in writers.into_iter().enumerate() {
        match w.await.expect("writer") {
            Ok(id) => committed.push(id),
            Err(e) => assert_eq!(i, 5, "only the failing write fails: {e}"),
        }
    }
    assert_eq!(committed.len(), 15);
    // What the failing one recorded was undone with it, and nothing else.
    let got = receiver.wait_for(15, WITHIN).await;
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    seen.sort();
    committed.sort();
    assert_eq!(seen, committed);
    {
        use entity::webhook_events::{Column, Entity};
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let n = Entity::find()
            .filter(Column::InstanceId.eq(inst))
            .count(&db)
            .await
            .expect("count");
        assert_eq!(n, 15, "the failed write left no event");
    }
    db.close().await.ok();
    wait_status(&app, inst, hook, "succeeded", 15).await;
    // Delivered deliveries leave the due queue.
    wait_due(&app, 0).await;
}

#[tokio::test]
async fn the_due_queue_follows_retries_dead_ends_and_replays() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    receiver.set_default(Answer::Status(500));
    let inst = instance(&app).await;
    let (hook, _) = register(&app, inst, json!({ "url": receiver.url("/") })).await;
    emit_pending(&app, inst, 1).await;
    let dead = wait_status(&app, inst, hook, "dead", 1).await;
    wait_due(&app, 0).await;

    receiver.set_default(Answer::Status(204));
    let path = format!(
        "{}/deliveries/{}/replay",
        hooks_path(inst, hook),
        dead[0]["id"].as_str().expect("id")
    );
    let replayed = send(app.req(Method::POST, &path)).await;
    assert_eq!(replayed.status, 202);
    wait_status(&app, inst, hook, "succeeded", 1).await;
    wait_due(&app, 0).await;
}
