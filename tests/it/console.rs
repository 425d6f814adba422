//! The console's files are served from the binary under a strict CSP (the
//! browser tests in console-tests/ use them as an operator would).

use crate::harness::TestApp;

#[tokio::test]
async fn console_assets_are_built_in_and_locked_down() {
    let app = TestApp::spawn().await;
    for (path, kind, marker) in [
        ("/console", "text/html", "/console/app.js"),
        ("/console/", "text/html", "/console/app.css"),
        ("/console/app.js", "text/javascript", "/v1/events/stream"),
        ("/console/app.css", "text/css", "@media"),
    ] {
        let resp = app.http.get(app.url(path)).send().await.expect("get");
        assert_eq!(resp.status(), 200, "{path}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        let body = resp.text().await.expect("body");
        assert!(body.contains(marker), "{path}");
    }
    let html = app
        .http
        .get(app.url("/console"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(!html.contains("<script>"), "no inline script");
    for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(
            !html.contains(attr),
            "nothing loaded from elsewhere ({attr})"
        );
    }
    let missing = app
        .http
        .get(app.url("/console/nope.js"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
}
