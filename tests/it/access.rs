//! Access control, route by route, read from the served OpenAPI document so
//! a new route cannot slip past: no key and a bad key are 401; a key of
//! another instance sees 404 (ids do not leak); admin routes are 403 to
//! scoped keys. Then scopes, revocation and send pacing.

use openapiv3::{OpenAPI, ReferenceOr};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use uuid::Uuid;
use wagate::engine::scripted::{Call, ScriptedEngine};

use crate::harness::{Reply, TestApp, TestDb, send, settings_with};
use crate::pairing::{new_instance, pair_and_connect};

const MINE: &str = "6281234567890";
const THEIRS: &str = "6281234567891";
const FRIEND: &str = "6281299990000";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// One operation of the served spec.
struct Op {
    method: Method,
    path: String,
    id: String,
    secured: bool,
    multipart: bool,
    json_body: bool,
    /// Required query parameters.
    query: Vec<String>,
}

async fn operations(app: &TestApp) -> Vec<Op> {
    let spec: OpenAPI = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("OpenAPI 3");
    let mut ops = Vec::new();
    for (path, item) in spec.paths.iter() {
        let item = item.as_item().expect("inline path item");
        for (method, op) in item.iter() {
            let body = op.request_body.as_ref().map(|b| match b {
                ReferenceOr::Item(b) => b.content.keys().cloned().collect::<Vec<_>>(),
                ReferenceOr::Reference { .. } => panic!("inline request bodies"),
            });
            let query =
                op.parameters
                    .iter()
                    .filter_map(|p| match p {
                        ReferenceOr::Item(openapiv3::Parameter::Query {
                            parameter_data, ..
                        }) if parameter_data.required => Some(parameter_data.name.clone()),
                        _ => None,
                    })
                    .collect();
            ops.push(Op {
                query,
                method: method.to_uppercase().parse().expect("method"),
                path: path.clone(),
                id: op.operation_id.clone().expect("operation id"),
                secured: op.security.as_ref().is_some_and(|s| !s.is_empty()),
                multipart: body
                    .as_ref()
                    .is_some_and(|c| c.iter().any(|t| t.starts_with("multipart/"))),
                json_body: body
                    .as_ref()
                    .is_some_and(|c| c.iter().any(|t| t.starts_with("application/json"))),
            });
        }
    }
    assert!(ops.len() > 40, "the spec lists every route");
    ops
}

/// A request for `op` on `instance` (and its `phone`), with a body that
/// passes validation, so only authorisation decides the answer.
fn request(app: &TestApp, op: &Op, instance: Uuid, phone: &str) -> reqwest::RequestBuilder {
    let path = op
        .path
        .replace("{id}", &instance.to_string())
        .replace("{phoneNumber}", phone)
        .replace("{webhook_id}", &Uuid::new_v4().to_string())
        .replace("{delivery_id}", &Uuid::new_v4().to_string())
        .replace("{key_id}", &Uuid::new_v4().to_string())
        .replace("{message_id}", "3EB0000000000000")
        .replace("{name}", "retention")
        .replace("{chat}", FRIEND)
        .replace("{group}", "120363000000000001@g.us");
    assert!(!path.contains('{'), "unfilled parameter in {path}");
    let query: Vec<String> = op
        .query
        .iter()
        .map(|name| match name.as_str() {
            "since" => "since=2026-01-01T00:00:00Z".to_owned(),
            other => panic!("no value for the query parameter {other}"),
        })
        .collect();
    let url = match query.is_empty() {
        true => app.url(&path),
        false => app.url(&format!("{path}?{}", query.join("&"))),
    };
    let req = app.http.request(op.method.clone(), url);
    if op.multipart {
        let file = Part::bytes(PNG.to_vec()).file_name("pic.png");
        return req.multipart(Form::new().text("to", FRIEND).part("file", file));
    }
    if !op.json_body {
        return req;
    }
    let body = match op.id.as_str() {
        "update_instance" => json!({ "name": "renamed" }),
        "pair_code" => json!({ "phone_number": MINE }),
        "create_webhook" | "create_global_webhook" => json!({ "url": "http://127.0.0.1:9/" }),
        "update_webhook" | "update_global_webhook" => json!({ "description": "x" }),
        "send_text" | "send_text_v1" => json!({ "to": FRIEND, "text": "hi" }),
        "send_media_url" | "send_media_url_v1" => {
            json!({ "to": FRIEND, "url": "http://127.0.0.1:9/pic.png" })
        }
        "check_numbers" => json!({ "numbers": [FRIEND], "instance_id": instance }),
        "create_key" => json!({ "instances": [instance], "scopes": ["read"] }),
        "send_location" | "send_location_v1" => {
            json!({ "to": FRIEND, "latitude": 1.0, "longitude": 2.0 })
        }
        "send_reaction" | "send_reaction_v1" => {
            json!({ "to": FRIEND, "message_id": "3EB0000000000000", "emoji": "👍" })
        }
        "send_poll" | "send_poll_v1" => {
            json!({ "to": FRIEND, "question": "?", "options": [{ "name": "a" }, { "name": "b" }] })
        }
        "send_contact" | "send_contact_v1" => {
            json!({ "to": FRIEND, "contacts": [{ "display_name": "A", "phone_numbers": [FRIEND] }] })
        }
        "edit_message" => json!({ "text": "x" }),
        "mark_chat_read" => json!({ "message_ids": ["3EB0000000000000"] }),
        "set_chat_presence" => json!({ "state": "typing" }),
        "set_presence" => json!({ "available": true }),
        "create_group" => json!({ "subject": "x", "participants": [FRIEND] }),
        "update_group" => json!({ "subject": "x" }),
        "change_group_participants" => json!({ "action": "add", "participants": [FRIEND] }),
        "join_group" => json!({ "invite": "ABC" }),
        "approve_group_membership_requests" | "reject_group_membership_requests" => {
            json!({ "participants": [FRIEND] })
        }
        _ => json!({}),
    };
    req.json(&body)
}

/// Two online instances, MINE and THEIRS.
async fn two_instances() -> (TestApp, Uuid, Uuid) {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| f);
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let mine = new_instance(&app).await;
    pair_and_connect(&app, mine, MINE).await;
    let theirs = new_instance(&app).await;
    pair_and_connect(&app, theirs, THEIRS).await;
    (app, mine, theirs)
}

async fn make_key(app: &TestApp, instances: &[Uuid], scopes: &[&str]) -> Reply {
    send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": instances, "scopes": scopes, "name": "test" })),
    )
    .await
}

async fn key_for(app: &TestApp, instances: &[Uuid], scopes: &[&str]) -> String {
    let made = make_key(app, instances, scopes).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    made.body["key"].as_str().expect("key").to_owned()
}

fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
    reply.assert_problem(401, "unauthorized");
    assert!(
        reply
            .headers
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("Bearer")),
        "{what}: WWW-Authenticate"
    );
}

#[tokio::test]
async fn every_route_but_the_probes_needs_a_valid_key() {
    let (app, mine, _) = two_instances().await;
    let ops = operations(&app).await;
    let open: Vec<&str> = ops
        .iter()
        .filter(|o| !o.secured)
        .map(|o| o.path.as_str())
        .collect();
    assert_eq!(open, ["/healthz", "/readyz"], "only the probes are open");
    let unknown = format!("wak_{}", "0".repeat(64));
    for op in ops.iter().filter(|o| o.secured) {
        let what = format!("{} {}", op.method, op.path);
        assert_unauthorized(&send(request(&app, op, mine, MINE)).await, &what);
        let bad_bearer = request(&app, op, mine, MINE).bearer_auth(&unknown);
        assert_unauthorized(&send(bad_bearer).await, &what);
        let bad_header = request(&app, op, mine, MINE).header("X-Api-Key", "not-a-key");
        assert_unauthorized(&send(bad_header).await, &what);
    }
    // The same requests with the admin key are answered (the test can fail).
    let get = ops.iter().find(|o| o.id == "get_instance").expect("op");
    let r = send(request(&app, get, mine, MINE).bearer_auth(crate::harness::ADMIN_KEY)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn a_key_of_another_instance_sees_nothing_of_this_one() {
    let (app, mine, theirs) = two_instances().await;
    let theirs_key = key_for(&app, &[theirs], &["send", "read", "webhooks", "manage"]).await;
    for op in operations(&app).await.iter().filter(|o| o.secured) {
        let what = format!("{} {}", op.method, op.path);
        if op.id == "stream_events" {
            // Open to every key, showing only its own instances (tests/it/stream.rs).
            let resp = request(&app, op, mine, MINE)
                .bearer_auth(&theirs_key)
                .send()
                .await
                .expect("stream");
            assert_eq!(resp.status(), 200, "{what}");
            continue;
        }
        let reply = send(request(&app, op, mine, MINE).bearer_auth(&theirs_key)).await;
        if op.path.contains("{id}") {
            reply.assert_problem(404, "instance_not_found");
            assert_eq!(
                reply.body["detail"],
                format!("instance {mine} not found"),
                "{what}: the same words as for a missing instance"
            );
        } else if op.path.contains("{phoneNumber}") {
            reply.assert_problem(404, "sender_not_found");
        } else if op.id == "check_numbers" {
            // Exactly what an instance that does not exist gets.
            let missing = send(
                request(&app, op, Uuid::new_v4(), MINE).bearer_auth(crate::harness::ADMIN_KEY),
            )
            .await;
            assert_eq!(
                (reply.status, &reply.body["code"]),
                (missing.status, &missing.body["code"]),
                "{what}"
            );
            assert_ne!(reply.status, 200, "{what}");
        } else if op.id == "list_instances" {
            assert_eq!(reply.status, 200, "{what}");
            let ids: Vec<&str> = reply.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["id"].as_str().expect("id"))
                .collect();
            assert_eq!(ids, [theirs.to_string()], "{what}");
        } else {
            assert_eq!(reply.status, 403, "{what}: {:?}", reply.body);
            reply.assert_problem(403, "admin_key_required");
        }
    }
    // On its own instance the same key is served.
    for path in [
        format!("/v1/instances/{theirs}"),
        format!("/v1/instances/{theirs}/webhooks"),
        format!("/v1/instances/{theirs}/messages"),
        format!("/v1/instances/{theirs}/events"),
    ] {
        let r = send(
            app.http
                .get(app.url(&path))
                .header("X-Api-Key", theirs_key.as_str()),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    let sent = send(
        app.http
            .post(app.url(&format!("/send/by-number/{THEIRS}")))
            .bearer_auth(&theirs_key)
            .json(&json!({ "to": FRIEND, "text": "hi" })),
    )
    .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
}

#[tokio::test]
async fn scopes_limit_what_a_key_may_do() {
    let (app, mine, _) = two_instances().await;
    let reader = key_for(&app, &[mine], &["read"]).await;
    let as_reader = |m: Method, p: &str| app.http.request(m, app.url(p)).bearer_auth(&reader);
    assert_eq!(
        send(as_reader(Method::GET, &format!("/v1/instances/{mine}")))
            .await
            .status,
        200
    );
    send(as_reader(Method::PATCH, &format!("/v1/instances/{mine}")).json(&json!({"name": "x"})))
        .await
        .assert_problem(403, "insufficient_scope");
    send(as_reader(
        Method::GET,
        &format!("/v1/instances/{mine}/webhooks"),
    ))
    .await
    .assert_problem(403, "insufficient_scope");
    send(as_reader(
        Method::POST,
        &format!("/v1/instances/{mine}/logout"),
    ))
    .await
    .assert_problem(403, "insufficient_scope");
    // Without `send`, even its own number is not found as a sender.
    send(
        as_reader(Method::POST, &format!("/send/by-number/{MINE}"))
            .json(&json!({ "to": FRIEND, "text": "hi" })),
    )
    .await
    .assert_problem(404, "sender_not_found");

    let sender = key_for(&app, &[mine], &["send"]).await;
    let r = send(
        app.http
            .post(app.url(&format!("/v1/send/by-number/{MINE}")))
            .bearer_auth(&sender)
            .json(&json!({ "to": FRIEND, "text": "hi" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    send(
        app.http
            .post(app.url(&format!("/v1/send/by-number/{THEIRS}")))
            .bearer_auth(&sender)
            .json(&json!({ "to": FRIEND, "text": "hi" })),
    )
    .await
    .assert_problem(404, "sender_not_found");
    // A sender key lists no instances: reading needs `read`.
    let listed = send(app.http.get(app.url("/v1/instances")).bearer_auth(&sender)).await;
    assert_eq!(listed.body["items"], json!([]));
}

#[tokio::test]
async fn keys_are_shown_once_listed_by_prefix_and_revoked() {
    let (app, mine, _) = two_instances().await;
    let made = make_key(&app, &[mine], &["read", "read"]).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let key = made.body["key"].as_str().expect("key").to_owned();
    let prefix = made.body["prefix"].as_str().expect("prefix");
    assert!(key.starts_with("wak_") && key.len() > 60, "{key}");
    assert!(key.starts_with(prefix) && prefix.len() < 20);
    assert_eq!(made.body["scopes"], json!(["read"]));
    let id = made.body["id"].as_str().expect("id");

    let list = send(app.req(Method::GET, "/v1/keys")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"][0]["prefix"], prefix);
    assert!(
        !list.body.to_string().contains(&key),
        "lists never show a key"
    );

    let get = |k: String| {
        app.http
            .get(app.url(&format!("/v1/instances/{mine}")))
            .bearer_auth(k)
    };
    assert_eq!(send(get(key.clone())).await.status, 200);
    // One character off is a different key.
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('0') { '1' } else { '0' });
    assert_unauthorized(&send(get(wrong)).await, "a near miss");

    let revoked = send(app.req(Method::DELETE, &format!("/v1/keys/{id}"))).await;
    assert_eq!(revoked.status, 204);
    assert_unauthorized(&send(get(key)).await, "a revoked key");
    send(app.req(Method::DELETE, &format!("/v1/keys/{id}")))
        .await
        .assert_problem(404, "key_not_found");

    // Keys name instances that exist, and at least one scope.
    make_key(&app, &[Uuid::new_v4()], &["read"])
        .await
        .assert_problem(422, "instance_not_found");
    make_key(&app, &[mine], &[])
        .await
        .assert_problem(422, "invalid_body");
    make_key(&app, &[mine], &["admin"])
        .await
        .assert_problem(422, "invalid_body");
}

fn sends(engine: &ScriptedEngine) -> Vec<Call> {
    engine
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::SendText { .. } | Call::Typing { .. }))
        .collect()
}

#[tokio::test]
async fn a_full_send_queue_is_refused_with_retry_after() {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| {
        f.merge(("messaging.pacing.max_queue", 0))
            .merge(("messaging.pacing.min_interval_ms", 1500))
    });
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let mine = new_instance(&app).await;
    pair_and_connect(&app, mine, MINE).await;
    app.engine.send_delay(std::time::Duration::from_secs(30));

    let path = format!("/v1/send/by-number/{MINE}");
    let first = tokio::spawn(
        app.req(Method::POST, &path)
            .json(&json!({ "to": FRIEND, "text": "first" }))
            .send(),
    );
    crate::harness::eventually("the first send in flight", || async {
        (!sends(&app.engine).is_empty()).then_some(())
    })
    .await;
    let second = send(
        app.req(Method::POST, &path)
            .json(&json!({ "to": FRIEND, "text": "second" })),
    )
    .await;
    second.assert_problem(429, "send_queue_full");
    let wait: u64 = second.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(wait >= 1, "{wait}");
    assert_eq!(sends(&app.engine).len(), 1, "the refused send was not sent");
    first.abort();
}

#[tokio::test]
async fn typing_is_shown_before_a_text_when_configured() {
    let db = TestDb::new().await;
    let settings = settings_with(&db, |f| {
        f.merge(("messaging.pacing.typing", true))
            .merge(("messaging.pacing.typing_ms_per_char", 1))
            .merge(("messaging.pacing.typing_max_ms", 5))
    });
    let engine = ScriptedEngine::new();
    engine.register_number(FRIEND);
    let app = TestApp::spawn_scripted(db, settings, engine).await;
    let mine = new_instance(&app).await;
    pair_and_connect(&app, mine, MINE).await;
    let r = send(
        app.req(Method::POST, &format!("/send/by-number/{MINE}"))
            .json(&json!({ "to": FRIEND, "text": "hello there" })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let jid = format!("{FRIEND}@s.whatsapp.net");
    match sends(&app.engine).as_slice() {
        [Call::Typing { to, .. }, Call::SendText { to: sent_to, .. }] => {
            assert_eq!((to, sent_to), (&jid, &jid));
        }
        other => panic!("typing, then the text: {other:?}"),
    }
}
