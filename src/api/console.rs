//! The operator web console at `/console`: three static files built into
//! the binary, served under a strict Content-Security-Policy (no inline
//! code, nothing from elsewhere), so it works offline and cannot be made to
//! load foreign scripts.

use poem::http::{StatusCode, header};
use poem::{Endpoint, EndpointExt, Response, Route, get, handler};

const INDEX: &str = include_str!("../../console/index.html");
const SCRIPT: &str = include_str!("../../console/app.js");
const STYLE: &str = include_str!("../../console/app.css");

/// Images may be data URLs: the QR code arrives as one.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &str, body: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
}

#[handler]
fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

#[handler]
fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[handler]
fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The console's routes, to nest at `/console`.
pub fn routes() -> impl Endpoint {
    Route::new()
        .at("/", get(index))
        .at("/app.js", get(script))
        .at("/app.css", get(style))
        .with(
            poem::middleware::SetHeader::new()
                .overriding(header::CONTENT_SECURITY_POLICY, POLICY)
                .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .overriding(header::X_FRAME_OPTIONS, "DENY")
                .overriding(header::REFERRER_POLICY, "no-referrer"),
        )
}
