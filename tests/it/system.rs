use reqwest::Method;

use crate::harness::{TestApp, send};

#[tokio::test]
async fn probes() {
    let app = TestApp::spawn().await;
    let health = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    assert_eq!(send(app.http.get(app.url("/readyz"))).await.status, 200);
    app.db.take_away().await;
    send(app.http.get(app.url("/readyz")))
        .await
        .assert_problem(503, "not_ready");
    // The process itself is still alive.
    assert_eq!(send(app.http.get(app.url("/healthz"))).await.status, 200);
}

#[tokio::test]
async fn openapi_document_is_valid_and_complete() {
    let app = TestApp::spawn().await;
    let text = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .text()
        .await
        .expect("body");
    let spec: openapiv3::OpenAPI = serde_json::from_str(&text).expect("a valid OpenAPI 3 document");
    assert!(spec.openapi.starts_with("3."), "{}", spec.openapi);

    let mut routes: Vec<String> = Vec::new();
    for (path, item) in spec.paths.iter() {
        let item = item.as_item().expect("inline path item");
        for (method, _) in item.iter() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.sort();
    let expected = [
        "DELETE /v1/instances/{id}",
        "DELETE /v1/instances/{id}/messages/{message_id}",
        "DELETE /v1/instances/{id}/webhooks/{webhook_id}",
        "DELETE /v1/keys/{key_id}",
        "DELETE /v1/webhooks/{webhook_id}",
        "GET /healthz",
        "GET /metrics",
        "GET /readyz",
        "GET /v1/admin/jobs",
        "GET /v1/admin/nodes",
        "GET /v1/events/stream",
        "GET /v1/instances",
        "GET /v1/instances/{id}",
        "GET /v1/instances/{id}/chats",
        "GET /v1/instances/{id}/contacts/lookup",
        "GET /v1/instances/{id}/events",
        "GET /v1/instances/{id}/events/stream",
        "GET /v1/instances/{id}/groups",
        "GET /v1/instances/{id}/groups/{group}",
        "GET /v1/instances/{id}/groups/{group}/invite-link",
        "GET /v1/instances/{id}/groups/{group}/membership-requests",
        "GET /v1/instances/{id}/messages",
        "GET /v1/instances/{id}/messages/{message_id}",
        "GET /v1/instances/{id}/messages/{message_id}/media",
        "GET /v1/instances/{id}/qr",
        "GET /v1/instances/{id}/webhooks",
        "GET /v1/instances/{id}/webhooks/{webhook_id}",
        "GET /v1/instances/{id}/webhooks/{webhook_id}/deliveries",
        "GET /v1/instances/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}",
        "GET /v1/instances/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}/attempts",
        "GET /v1/instances/{id}/webhooks/{webhook_id}/secret",
        "GET /v1/keys",
        "GET /v1/webhooks",
        "GET /v1/webhooks/{webhook_id}",
        "GET /v1/webhooks/{webhook_id}/deliveries",
        "GET /v1/webhooks/{webhook_id}/deliveries/{delivery_id}",
        "GET /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/attempts",
        "GET /v1/webhooks/{webhook_id}/secret",
        "PATCH /v1/instances/{id}",
        "PATCH /v1/instances/{id}/groups/{group}",
        "PATCH /v1/instances/{id}/messages/{message_id}",
        "PATCH /v1/instances/{id}/webhooks/{webhook_id}",
        "PATCH /v1/webhooks/{webhook_id}",
        "POST /send/by-number/{phoneNumber}",
        "POST /send/by-number/{phoneNumber}/contact",
        "POST /send/by-number/{phoneNumber}/location",
        "POST /send/by-number/{phoneNumber}/media-file",
        "POST /send/by-number/{phoneNumber}/media-url",
        "POST /send/by-number/{phoneNumber}/poll",
        "POST /send/by-number/{phoneNumber}/reaction",
        "POST /v1/admin/jobs/{name}/run",
        "POST /v1/instances",
        "POST /v1/instances/{id}/chats/{chat}/presence",
        "POST /v1/instances/{id}/chats/{chat}/read",
        "POST /v1/instances/{id}/groups",
        "POST /v1/instances/{id}/groups/join",
        "POST /v1/instances/{id}/groups/{group}/invite-link/revoke",
        "POST /v1/instances/{id}/groups/{group}/leave",
        "POST /v1/instances/{id}/groups/{group}/membership-requests/approve",
        "POST /v1/instances/{id}/groups/{group}/membership-requests/reject",
        "POST /v1/instances/{id}/groups/{group}/participants",
        "POST /v1/instances/{id}/login",
        "POST /v1/instances/{id}/logout",
        "POST /v1/instances/{id}/pair-code",
        "POST /v1/instances/{id}/webhooks",
        "POST /v1/instances/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        "POST /v1/instances/{id}/webhooks/{webhook_id}/recover",
        "POST /v1/instances/{id}/webhooks/{webhook_id}/rotate-secret",
        "POST /v1/instances/{id}/webhooks/{webhook_id}/test",
        "POST /v1/keys",
        "POST /v1/numbers/check",
        "POST /v1/send/by-number/{phoneNumber}",
        "POST /v1/send/by-number/{phoneNumber}/contact",
        "POST /v1/send/by-number/{phoneNumber}/location",
        "POST /v1/send/by-number/{phoneNumber}/media-file",
        "POST /v1/send/by-number/{phoneNumber}/media-url",
        "POST /v1/send/by-number/{phoneNumber}/poll",
        "POST /v1/send/by-number/{phoneNumber}/reaction",
        "POST /v1/webhooks",
        "POST /v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        "POST /v1/webhooks/{webhook_id}/recover",
        "POST /v1/webhooks/{webhook_id}/rotate-secret",
        "PUT /v1/instances/{id}/presence",
    ];
    assert_eq!(routes, expected);

    let schemes = spec
        .components
        .as_ref()
        .map(|c| c.security_schemes.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(schemes.len(), 2, "bearer and X-Api-Key: {schemes:?}");
}

#[tokio::test]
async fn docs_ui_is_html() {
    let app = TestApp::spawn().await;
    let resp = app.http.get(app.url("/docs")).send().await.expect("docs");
    assert_eq!(resp.status(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let body = resp.text().await.expect("body");
    assert!(body.contains("swagger"), "the page loads the docs UI");
}

#[tokio::test]
async fn unknown_routes_are_problems() {
    let app = TestApp::spawn().await;
    send(app.req(Method::GET, "/v1/nothing-here"))
        .await
        .assert_problem(404, "route_not_found");
    send(app.req(Method::PUT, "/v1/instances"))
        .await
        .assert_problem(405, "method_not_allowed");
}

/// The rules the server enforces on a request's shape are in the document,
/// so generated clients know them: phone-number patterns, URL formats and
/// patterns, event-type enums.
#[tokio::test]
async fn the_document_states_the_rules() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let schemas = &doc["components"]["schemas"];
    let phone = |s: &serde_json::Value| {
        assert!(s["pattern"].is_string(), "phone pattern: {s}");
        assert_eq!(s["maxLength"], 32, "{s}");
    };
    for path in [
        "/send/by-number/{phoneNumber}",
        "/v1/send/by-number/{phoneNumber}",
    ] {
        let params = doc["paths"][path]["post"]["parameters"]
            .as_array()
            .expect("parameters");
        let sender = params
            .iter()
            .find(|p| p["name"] == "phoneNumber")
            .expect("phoneNumber");
        phone(&sender["schema"]);
    }
    // A recipient is a number or a group's JID.
    for to in [
        &schemas["SendText"]["properties"]["to"],
        &schemas["SendUrl"]["properties"]["to"],
    ] {
        assert!(
            to["pattern"]
                .as_str()
                .is_some_and(|p| p.contains(r"@g\.us")),
            "recipient pattern: {to}"
        );
        assert_eq!(to["maxLength"], 64, "{to}");
    }
    let group = doc["paths"]["/v1/instances/{id}/groups/{group}"]["get"]["parameters"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "group"))
        .expect("group parameter");
    assert!(group["schema"]["pattern"].is_string(), "{group}");
    phone(&schemas["PairCodeRequest"]["properties"]["phone_number"]);
    phone(&schemas["CheckNumbers"]["properties"]["numbers"]["items"]);
    for url in [
        &schemas["SendUrl"]["properties"]["url"],
        &schemas["CreateWebhook"]["properties"]["url"],
    ] {
        assert_eq!(url["format"], "uri", "{url}");
        assert!(
            url["pattern"]
                .as_str()
                .is_some_and(|p| p.contains("[hH][tT][tT][pP]")),
            "{url}"
        );
    }
    let events = &schemas["CreateWebhook"]["properties"]["events"]["items"]["enum"];
    assert!(
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v == "message.received")),
        "{events}"
    );
}
