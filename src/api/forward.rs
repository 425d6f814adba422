//! Calls that need an instance's live client, forwarded to the node that
//! holds its lease. Reads answer from the database on any node; a send, a
//! pairing step, a group change, a number check or an inbound media file
//! (kept on the owner's disk) goes to the owner, signed with the cluster
//! secret so the owner knows not to forward it again. The key is checked here first (an
//! invalid key or a hidden instance is answered locally, never forwarded)
//! and again by the owner's own handler.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::TryStreamExt;
use poem::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use ring::hmac;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::auth::{Keys, presented_key};
use super::error::ApiError;
use crate::state::AppState;

/// Carries `<unix seconds>.<base64url HMAC>` on a forwarded call.
const FORWARDED: &str = "x-wagate-forwarded";
/// How far a forwarded call's timestamp may be from this node's clock.
const SKEW: u64 = 60;

/// The forwarding policy, installed as request data.
#[derive(Clone)]
pub struct Forwarder {
    state: AppState,
    key: Option<hmac::Key>,
    client: reqwest::Client,
}

impl Forwarder {
    pub fn new(state: AppState) -> Result<Self, reqwest::Error> {
        let secret = &state.settings.cluster.secret;
        let key =
            (!secret.is_empty()).then(|| hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()));
        // Peers are private addresses by nature: this client never goes
        // through the outbound guard, and only ever calls advertised URLs.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(
                state.settings.whatsapp.answer_timeout_secs + 30,
            ))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { state, key, client })
    }
}

fn sign(key: &hmac::Key, at: u64, method: &Method, target: &str) -> String {
    let tag = hmac::sign(key, format!("{at}\n{method}\n{target}").as_bytes());
    format!("{at}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn verify(key: &hmac::Key, value: &[u8], method: &Method, target: &str) -> bool {
    let Some((at, tag)) = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.split_once('.'))
    else {
        return false;
    };
    let (Ok(at), Ok(tag)) = (at.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag)) else {
        return false;
    };
    if now().abs_diff(at) > SKEW {
        return false;
    }
    let signed = format!("{at}\n{method}\n{target}");
    hmac::verify(key, signed.as_bytes(), &tag).is_ok()
}

/// What a path names, when its call needs the live client.
enum Live<'a> {
    Instance(Uuid),
    Sender(&'a str),
    /// The instance is named in the JSON body (`instance_id`), or, absent,
    /// any online one the caller may use answers.
    InBody,
}

/// The calls that need the instance's live client (or its node's disk).
fn live_target<'a>(method: &Method, path: &'a str) -> Option<Live<'a>> {
    if path == "/v1/numbers/check" {
        return (method == Method::POST).then_some(Live::InBody);
    }
    for prefix in ["/v1/send/by-number/", "/send/by-number/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let number = rest.split('/').next().filter(|n| !n.is_empty())?;
            return (method == Method::POST).then_some(Live::Sender(number));
        }
    }
    let rest = path.strip_prefix("/v1/instances/")?;
    let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let id = Uuid::parse_str(id).ok()?;
    let segments: Vec<&str> = rest.split('/').collect();
    let live = match segments.as_slice() {
        // Deleting logs the live session out first.
        [""] => method == Method::DELETE,
        ["login" | "pair-code" | "logout" | "qr" | "presence"] => true,
        ["contacts", "lookup"] => true,
        ["chats", _, _] => method == Method::POST,
        ["groups", ..] => true,
        ["messages", _] => method == Method::PATCH || method == Method::DELETE,
        ["messages", _, "media"] => true,
        _ => false,
    };
    live.then_some(Live::Instance(id))
}

pub async fn forward<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let Some(fwd) = req.data::<Forwarder>().cloned() else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    if let Some(value) = req.headers().get(FORWARDED) {
        if !fwd
            .key
            .as_ref()
            .is_some_and(|key| verify(key, value.as_bytes(), req.method(), &target))
        {
            tracing::warn!("refused a forwarded call whose signature does not verify");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_forward_signature",
                "the call claims to come from another node but its signature does not verify",
            )
            .into());
        }
        // The other node found this one holding the instance: answer here,
        // whatever happened to the lease meanwhile, so a call never loops.
        return next.call(req).await.map(IntoResponse::into_response);
    }
    match owner_elsewhere(&fwd, &mut req).await {
        Ok(Some(owner)) => match &fwd.key {
            Some(key) => proxy(&fwd, key, &owner, req, &target).await,
            None => Err(unavailable(
                "another node holds this instance and no cluster secret is set to forward to it",
            )
            .into()),
        },
        Ok(None) => next.call(req).await.map(IntoResponse::into_response),
        Err(e) => Err(e.into()),
    }
}

fn unavailable(detail: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "instance_unavailable",
        detail,
    )
    .retry_after(Duration::from_secs(5))
}

/// The URL of the node to forward `req` to, when it needs the live client
/// of an instance that another live node holds and the caller may see it.
async fn owner_elsewhere(fwd: &Forwarder, req: &mut Request) -> Result<Option<String>, ApiError> {
    let Some(cluster) = fwd.state.sessions.cluster() else {
        return Ok(None);
    };
    let instance = match live_target(req.method(), req.uri().path()) {
        None => return Ok(None),
        Some(Live::Instance(id)) => Some(id),
        Some(Live::Sender(raw)) => {
            let raw = percent_decoded(raw);
            let Ok(number) = fwd.state.messenger.normalize("phoneNumber", &raw) else {
                return Ok(None);
            };
            let found = entity::instances::Entity::find()
                .filter(entity::instances::Column::PhoneNumber.eq(number))
                .one(&fwd.state.db)
                .await?;
            match found {
                Some(i) => Some(i.id),
                None => return Ok(None),
            }
        }
        Some(Live::InBody) => {
            // The body is small JSON (the body limit applies before this);
            // it is read here and put back for the handler or the owner.
            let body = match req.take_body().into_bytes().await {
                Ok(body) => body,
                // Too large or cut off: the handler and the limit answer.
                Err(_) => return Ok(None),
            };
            let named = instance_named(&body);
            req.set_body(body);
            named
        }
    };
    if instance.is_some_and(|id| cluster.holds(id)) {
        return Ok(None);
    }
    // Only a caller that may see the instance is forwarded; anyone else
    // gets this node's own answer (401, or 404 for a hidden instance).
    let Some(presented) = presented_key(req.headers()).and_then(|k| std::str::from_utf8(k).ok())
    else {
        return Ok(None);
    };
    let Some(keys) = req.data::<Keys>() else {
        return Ok(None);
    };
    let Some(principal) = keys.check(presented).await? else {
        return Ok(None);
    };
    match instance {
        Some(id) if principal.can_see(id) => Ok(cluster.owner_elsewhere(id).await?),
        Some(_) => Ok(None),
        None => any_online_elsewhere(fwd, cluster, &principal).await,
    }
}

/// For a call any online instance can answer: `None` when one the caller
/// may send from is connected here, else a node holding one.
async fn any_online_elsewhere(
    fwd: &Forwarder,
    cluster: &crate::cluster::Cluster,
    principal: &crate::access::Principal,
) -> Result<Option<String>, ApiError> {
    use entity::instances::{Column, Entity, Status};
    use sea_orm::QuerySelect;
    let visible = principal.visible(crate::access::Scope::Send);
    let mut online = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.eq(Status::Online));
    if let Some(ids) = &visible {
        online = online.filter(Column::Id.is_in(ids.iter().copied()));
    }
    let online: Vec<Uuid> = online.into_tuple().all(&fwd.state.db).await?;
    if online
        .iter()
        .any(|id| fwd.state.sessions.session(*id).is_some())
    {
        return Ok(None);
    }
    Ok(cluster.owner_of_any_online(visible.as_deref()).await?)
}

/// The `instance_id` a JSON body names, if any.
fn instance_named(body: &[u8]) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Uuid::parse_str(value.get("instance_id")?.as_str()?).ok()
}

const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::HOST,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name) && name.as_str() != "keep-alive" {
            to.append(name.clone(), value.clone());
        }
    }
}

async fn proxy(
    fwd: &Forwarder,
    key: &hmac::Key,
    owner: &str,
    mut req: Request,
    target: &str,
) -> poem::Result<Response> {
    let url = format!("{}{target}", owner.trim_end_matches('/'));
    let mut headers = HeaderMap::new();
    copy_headers(req.headers(), &mut headers);
    let signature = sign(key, now(), req.method(), target);
    if let Ok(value) = header::HeaderValue::from_str(&signature) {
        headers.insert(FORWARDED, value);
    }
    let body = reqwest::Body::wrap_stream(req.take_body().into_bytes_stream());
    tracing::debug!(%owner, "forwarding to the node that holds the instance");
    let sent = fwd
        .client
        .request(req.method().clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(%owner, error = %e, "the node holding the instance did not answer");
            return Err(unavailable("the node holding this instance did not answer").into());
        }
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    copy_headers(answer.headers(), &mut headers);
    let stream = answer.bytes_stream().map_err(std::io::Error::other);
    let mut resp = Response::builder()
        .status(status)
        .body(Body::from_bytes_stream(stream));
    *resp.headers_mut() = headers;
    Ok(resp)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A path segment as the route will read it (`+62%20812…` is `+62 812…`).
fn percent_decoded(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map_or_else(|| raw.to_owned(), |(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_live_calls_are_forwarded() {
        let id = Uuid::nil();
        let live = |m: Method, p: &str| live_target(&m, p).is_some();
        assert!(live(Method::POST, "/v1/send/by-number/628123/media-url"));
        assert!(live(Method::POST, "/send/by-number/628123"));
        assert!(live(Method::POST, &format!("/v1/instances/{id}/login")));
        assert!(live(
            Method::GET,
            &format!("/v1/instances/{id}/groups/1@g.us")
        ));
        assert!(live(
            Method::GET,
            &format!("/v1/instances/{id}/messages/3EB0/media")
        ));
        assert!(live(
            Method::PATCH,
            &format!("/v1/instances/{id}/messages/3EB0")
        ));
        assert!(live(Method::DELETE, &format!("/v1/instances/{id}")));
        assert!(live(
            Method::POST,
            &format!("/v1/instances/{id}/chats/62812/read")
        ));
        assert!(!live(Method::GET, &format!("/v1/instances/{id}")));
        assert!(!live(Method::PATCH, &format!("/v1/instances/{id}")));
        assert!(!live(
            Method::GET,
            &format!("/v1/instances/{id}/messages/3EB0")
        ));
        assert!(!live(Method::GET, &format!("/v1/instances/{id}/messages")));
        assert!(!live(Method::GET, &format!("/v1/instances/{id}/chats")));
        assert!(!live(Method::POST, &format!("/v1/instances/{id}/webhooks")));
        assert!(!live(Method::GET, "/v1/instances/not-a-uuid/login"));
        assert!(live(Method::POST, "/v1/numbers/check"));
        assert!(!live(Method::GET, "/v1/numbers/check"));
        assert!(!live(Method::POST, "/v1/numbers/check/x"));
    }

    #[test]
    fn the_instance_a_number_check_names_is_read_from_its_body() {
        let id = Uuid::new_v4();
        let named = format!(r#"{{"numbers":["62812"],"instance_id":"{id}"}}"#);
        assert_eq!(instance_named(named.as_bytes()), Some(id));
        assert_eq!(instance_named(br#"{"numbers":["62812"]}"#), None);
        assert_eq!(instance_named(br#"{"instance_id":null}"#), None);
        assert_eq!(instance_named(br#"{"instance_id":"nope"}"#), None);
        assert_eq!(instance_named(b"not json"), None);
    }

    #[test]
    fn a_signature_verifies_only_for_its_call_and_while_fresh() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef");
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"fedcba9876543210fedcba9876543210");
        let (post, target) = (Method::POST, "/v1/send/by-number/1");
        let good = sign(&key, now(), &post, target);
        assert!(verify(&key, good.as_bytes(), &post, target));
        assert!(!verify(&other, good.as_bytes(), &post, target));
        assert!(!verify(
            &key,
            good.as_bytes(),
            &post,
            "/v1/send/by-number/2"
        ));
        assert!(!verify(&key, good.as_bytes(), &Method::DELETE, target));
        let stale = sign(&key, now() - 2 * SKEW, &post, target);
        assert!(!verify(&key, stale.as_bytes(), &post, target));
        for junk in ["", ".", "12", "x.ab", "1.!!", "1.abc"] {
            assert!(!verify(&key, junk.as_bytes(), &post, target));
        }
    }
}
