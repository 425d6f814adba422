//! The catch-up cursor and ordered webhooks follow commit order: events of
//! one instance recorded by concurrent transactions, read by a poller while
//! they commit, are seen once each and in the order they committed, even
//! when transactions commit in the reverse order of their event ids.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::webhooks::EventType;

use crate::harness::{ADMIN_KEY, TestApp, send};
use crate::receiver::Receiver;

const WRITERS: usize = 8;
const PER_WRITER: usize = 15;

#[tokio::test]
async fn a_poller_sees_every_event_once_in_commit_order_while_writers_race() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let inst: Uuid = {
        let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body["id"].as_str().expect("id").parse().expect("uuid")
    };
    let hook = send(
        app.req(Method::POST, &format!("/v1/instances/{inst}/webhooks"))
            .json(&json!({ "url": receiver.url("/"), "ordered": true })),
    )
    .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);

    let done = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_until_done(app.url(""), inst, done.clone()));

    let mut opts = sea_orm::ConnectOptions::new(app.db.url.clone());
    opts.max_connections(WRITERS as u32).sqlx_logging(false);
    let db = sea_orm::Database::connect(opts).await.expect("connect");
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (db, webhooks) = (db.clone(), app.webhooks.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let txn = wagate::db::begin_write(&db).await.expect("begin");
                let mut outbox = webhooks.outbox();
                outbox
                    .record(
                        &txn,
                        inst,
                        EventType::MessageSent,
                        json!({ "writer": w, "i": i }),
                    )
                    .await
                    .expect("record");
                txn.commit().await.expect("commit");
                outbox.committed();
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::Release);
    let polled = poller.await.expect("poller");

    let total = WRITERS * PER_WRITER;
    let ids: Vec<&str> = polled.events.iter().map(|(_, id)| id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), total, "every event seen");
    assert_eq!(unique.len(), total, "no event seen twice");
    let positions: Vec<i64> = polled.events.iter().map(|(p, _)| *p).collect();
    let expected: Vec<i64> = (1..=i64::try_from(total).expect("fits")).collect();
    assert_eq!(positions, expected, "positions are gapless, in order");
    eprintln!(
        "{} of {total} events committed after a later id was read",
        polled.behind_an_id_cursor
    );
    if app.db.url.starts_with("postgres") {
        // The race this guards against happened: events committed after a
        // later id had been read, which paging by id would have skipped.
        assert!(
            polled.behind_an_id_cursor > 0,
            "no transaction committed out of id order; the test proved nothing"
        );
    }

    // The ordered webhook got them in the same order.
    let position_of: HashMap<&str, i64> = polled
        .events
        .iter()
        .map(|(p, id)| (id.as_str(), *p))
        .collect();
    let got = receiver.wait_for(total, Duration::from_secs(60)).await;
    let delivered: Vec<i64> = got
        .iter()
        .map(|r| position_of[r.header("webhook-id")])
        .collect();
    assert_eq!(delivered, expected, "ordered webhook follows positions");
}

struct Polled {
    /// (position, id) in the order read.
    events: Vec<(i64, String)>,
    /// Events read after an event with a greater id had already been read.
    behind_an_id_cursor: usize,
}

/// Reads the instance's events by cursor, as an integration would, until
/// `done` is set and a last page comes back empty.
async fn poll_until_done(base: String, inst: Uuid, done: Arc<AtomicBool>) -> Polled {
    let client = crate::harness::http_client();
    let mut polled = Polled {
        events: Vec::new(),
        behind_an_id_cursor: 0,
    };
    let mut after: Option<String> = None;
    let mut greatest_id = String::new();
    loop {
        let finished = done.load(Ordering::Acquire);
        let mut path = format!("{base}/v1/instances/{inst}/events?limit=7");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let page = client.get(&path).bearer_auth(ADMIN_KEY).send().await;
        let page: Value = page.expect("poll").json().await.expect("json");
        let items = page["items"].as_array().expect("items").clone();
        for e in &items {
            let id = e["id"].as_str().expect("id").to_owned();
            let position = e["position"].as_i64().expect("position");
            if id < greatest_id {
                polled.behind_an_id_cursor += 1;
            }
            if id > greatest_id {
                greatest_id = id.clone();
            }
            after = Some(position.to_string());
            polled.events.push((position, id));
        }
        if items.is_empty() && finished {
            return polled;
        }
        if items.is_empty() {
            tokio::task::yield_now().await;
        }
    }
}
