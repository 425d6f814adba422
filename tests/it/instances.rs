use entity::instances::{ActiveModel, Status};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::{Value, json};

use crate::harness::{Reply, TestApp, send};

async fn create(app: &TestApp, body: Value) -> Reply {
    send(app.req(Method::POST, "/v1/instances").json(&body)).await
}

async fn set_status(app: &TestApp, id: &str, status: Status) {
    let db = app.db.connect().await;
    let row = ActiveModel {
        id: Set(id.parse().expect("uuid")),
        status: Set(status),
        ..Default::default()
    };
    row.update(&db).await.expect("update status");
    db.close().await.ok();
}

#[tokio::test]
async fn create_then_get() {
    let app = TestApp::spawn().await;
    let created = create(&app, json!({"name": "sales"})).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["name"], "sales");
    assert_eq!(created.body["status"], "created");
    assert_eq!(created.body["is_connected"], false);
    assert!(created.body["phone_number"].is_null());
    let id = created.body["id"].as_str().expect("id").to_owned();

    let got = send(app.req(Method::GET, &format!("/v1/instances/{id}"))).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);

    let unnamed = create(&app, json!({})).await;
    assert_eq!(unnamed.status, 201);
    assert!(unnamed.body["name"].is_null());
    assert_ne!(unnamed.body["id"], created.body["id"]);
}

#[tokio::test]
async fn create_rejects_bad_bodies() {
    let app = TestApp::spawn().await;
    create(&app, json!({"name": "x".repeat(101)}))
        .await
        .assert_problem(422, "invalid_body");
    create(&app, json!({"name": ""}))
        .await
        .assert_problem(422, "invalid_body");
    create(&app, json!({"name": ["a"]}))
        .await
        .assert_problem(422, "invalid_body");
    create(&app, json!({"nmae": "typo"}))
        .await
        .assert_problem(422, "invalid_body");
    send(
        app.req(Method::POST, "/v1/instances")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await
    .assert_problem(422, "invalid_body");
    send(
        app.req(Method::POST, "/v1/instances")
            .header("content-type", "text/plain")
            .body("name=x"),
    )
    .await
    .assert_problem(415, "unsupported_content_type");

    // Exactly 100 characters (not bytes) is allowed.
    let long = create(&app, json!({"name": "é".repeat(100)})).await;
    assert_eq!(long.status, 201, "{:?}", long.body);
}

#[tokio::test]
async fn unknown_and_malformed_ids() {
    let app = TestApp::spawn().await;
    let missing = uuid::Uuid::now_v7();
    for method in [Method::GET, Method::DELETE] {
        send(app.req(method.clone(), &format!("/v1/instances/{missing}")))
            .await
            .assert_problem(404, "instance_not_found");
        send(app.req(method, "/v1/instances/not-a-uuid"))
            .await
            .assert_problem(400, "invalid_parameter");
    }
    send(
        app.req(Method::PATCH, &format!("/v1/instances/{missing}"))
            .json(&json!({"name": "x"})),
    )
    .await
    .assert_problem(404, "instance_not_found");
}

#[tokio::test]
async fn list_pages_and_filters() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = create(&app, json!({"name": format!("n{i}")})).await;
        ids.push(r.body["id"].as_str().expect("id").to_owned());
    }

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/instances?limit=2&after={a}"),
            None => "/v1/instances?limit=2".to_owned(),
        };
        let page = send(app.req(Method::GET, &path)).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        pages += 1;
        let items = page.body["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
        match page.body["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every instance once, oldest first");

    set_status(&app, &ids[1], Status::Online).await;
    let online = send(app.req(Method::GET, "/v1/instances?status=online")).await;
    let items = online.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], ids[1].as_str());
    assert_eq!(items[0]["status"], "online");
    let created = send(app.req(Method::GET, "/v1/instances?status=created")).await;
    assert_eq!(created.body["items"].as_array().map(Vec::len), Some(4));

    for bad in ["limit=0", "limit=x", "status=sleeping", "after=nope"] {
        send(app.req(Method::GET, &format!("/v1/instances?{bad}")))
            .await
            .assert_problem(400, "invalid_parameter");
    }
    // Past the configured maximum the page is cut to it.
    let huge = send(app.req(Method::GET, "/v1/instances?limit=100000")).await;
    assert_eq!(huge.status, 200, "{:?}", huge.body);
}

#[tokio::test]
async fn rename() {
    let app = TestApp::spawn().await;
    let id = create(&app, json!({"name": "old"})).await.body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/instances/{id}");

    let renamed = send(app.req(Method::PATCH, &path).json(&json!({"name": "new"}))).await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.body["name"], "new");

    let untouched = send(app.req(Method::PATCH, &path).json(&json!({}))).await;
    assert_eq!(untouched.body["name"], "new");

    let cleared = send(app.req(Method::PATCH, &path).json(&json!({"name": null}))).await;
    assert_eq!(cleared.status, 200);
    assert!(cleared.body["name"].is_null());
    assert_eq!(
        send(app.req(Method::GET, &path)).await.body["name"],
        Value::Null
    );

    send(
        app.req(Method::PATCH, &path)
            .json(&json!({"name": "y".repeat(101)})),
    )
    .await
    .assert_problem(422, "invalid_body");
}

#[tokio::test]
async fn delete_respects_status() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            create(&app, json!({})).await.body["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }

    // Never paired: deletable.
    let r = send(app.req(Method::DELETE, &format!("/v1/instances/{}", ids[0]))).await;
    assert_eq!(r.status, 204);
    send(app.req(Method::GET, &format!("/v1/instances/{}", ids[0])))
        .await
        .assert_problem(404, "instance_not_found");

    // Online: refused, and still there.
    set_status(&app, &ids[1], Status::Online).await;
    send(app.req(Method::DELETE, &format!("/v1/instances/{}", ids[1])))
        .await
        .assert_problem(409, "instance_online");
    let still = send(app.req(Method::GET, &format!("/v1/instances/{}", ids[1]))).await;
    assert_eq!(still.status, 200);

    // Logged out: deletable.
    set_status(&app, &ids[2], Status::LoggedOut).await;
    let r = send(app.req(Method::DELETE, &format!("/v1/instances/{}", ids[2]))).await;
    assert_eq!(r.status, 204);
}

#[tokio::test]
async fn keys_are_required() {
    let app = TestApp::spawn().await;
    let no_key = send(app.http.get(app.url("/v1/instances"))).await;
    no_key.assert_problem(401, "unauthorized");
    assert!(
        no_key
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer")),
        "401 carries WWW-Authenticate"
    );
    send(app.http.get(app.url("/v1/instances")).bearer_auth("wrong"))
        .await
        .assert_problem(401, "unauthorized");
    send(
        app.http
            .post(app.url("/v1/instances"))
            .header("x-api-key", "wrong")
            .json(&json!({})),
    )
    .await
    .assert_problem(401, "unauthorized");
    let listed = send(
        app.http
            .get(app.url("/v1/instances"))
            .header("x-api-key", crate::harness::ADMIN_KEY),
    )
    .await;
    assert_eq!(listed.status, 200);
}

#[tokio::test]
async fn each_key_is_rate_limited() {
    let app = TestApp::spawn_with(|f| {
        f.merge(("api.rate_limit_per_sec", 0.5))
            .merge(("api.rate_limit_burst", 3))
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            send(app.req(Method::GET, "/v1/instances")).await.status,
            200
        );
    }
    let limited = send(app.req(Method::GET, "/v1/instances")).await;
    limited.assert_problem(429, "rate_limited");
    let wait: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&wait), "{wait}");
    // The same key sent the other way is the same identity, the same bucket.
    send(
        app.http
            .get(app.url("/v1/instances"))
            .header("x-api-key", crate::harness::ADMIN_KEY),
    )
    .await
    .assert_problem(429, "rate_limited");
    // Probes answer even with the limited key.
    for probe in ["/healthz", "/readyz"] {
        let resp = send(
            app.http
                .get(app.url(probe))
                .bearer_auth(crate::harness::ADMIN_KEY),
        )
        .await;
        assert_eq!(resp.status, 200, "{probe}");
    }
    // Another key has its own bucket; probes need none.
    let other = send(
        app.http
            .get(app.url("/v1/instances"))
            .bearer_auth("someone-else"),
    )
    .await;
    other.assert_problem(401, "unauthorized");
    assert_eq!(send(app.http.get(app.url("/healthz"))).await.status, 200);
}
