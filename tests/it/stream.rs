//! The live event streams (SSE) over real HTTP: replay then live with no
//! gap and no duplicate at the seam while writers race, `Last-Event-ID`,
//! the `types` filter, heartbeats, scoped keys and revocation.

use std::time::Duration;

use reqwest::Method;
use sea_orm::TransactionTrait;
use serde_json::{Value, json};
use uuid::Uuid;
use wagate::webhooks::{EventType, record};

use crate::harness::{TestApp, send};

const WITHIN: Duration = Duration::from_secs(15);

/// One parsed SSE event.
#[derive(Debug)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// Reads an open `text/event-stream` response.
struct Reader {
    resp: reqwest::Response,
    buf: String,
    heartbeats: usize,
}

impl Reader {
    async fn open(rb: reqwest::RequestBuilder) -> Self {
        let resp = rb.send().await.expect("stream request");
        assert_eq!(resp.status(), 200, "stream opens");
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Self {
            resp,
            buf: String::new(),
            heartbeats: 0,
        }
    }

    /// The next event, or `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = self.parse(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("an event within the deadline")
                .expect("stream chunk")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    fn parse(&mut self, block: &str) -> Option<Sse> {
        let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
        for line in block.lines() {
            if line.starts_with(':') {
                self.heartbeats += 1;
            } else if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        (!data.is_empty()).then(|| Sse {
            id,
            event,
            data: serde_json::from_str(&data).expect("JSON data"),
        })
    }

    /// Reads `n` events.
    async fn take(&mut self, n: usize) -> Vec<Sse> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            got.push(self.next().await.expect("the stream goes on"));
        }
        got
    }
}

async fn new_instance(app: &TestApp) -> Uuid {
    let r = send(app.req(Method::POST, "/v1/instances").json(&json!({}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").parse().expect("uuid")
}

/// Records `n` events of `event_type`, one transaction each, announced as
/// the gateway's own writers announce them.
async fn emit(app: &TestApp, instance: Uuid, event_type: EventType, n: usize) {
    let db = app.db.connect().await;
    for i in 0..n {
        let txn = db.begin().await.expect("begin");
        let mut outbox = app.webhooks.outbox();
        outbox
            .record(&txn, instance, event_type, json!({ "seq": i }))
            .await
            .expect("record");
        txn.commit().await.expect("commit");
        outbox.committed();
    }
    db.close().await.ok();
}

fn stream_path(instance: Uuid) -> String {
    format!("/v1/instances/{instance}/events/stream")
}

fn positions(events: &[Sse]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.data["position"].as_i64().expect("position"))
        .collect()
}

#[tokio::test]
async fn replay_then_live_has_no_gap_and_no_duplicate_while_writers_race() {
    let app = TestApp::spawn_with(|f| f.merge(("streams.heartbeat_secs", 0.2))).await;
    let inst = new_instance(&app).await;
    emit(&app, inst, EventType::MessageSent, 20).await;
    // Writers keep committing while the stream replays and switches to
    // live, so some events land between the two.
    const WRITERS: usize = 4;
    const EACH: usize = 30;
    let mut writers = Vec::with_capacity(WRITERS);
    for _ in 0..WRITERS {
        let db = app.db.connect().await;
        let hooks = app.webhooks.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let txn = db.begin().await.expect("begin");
                let mut outbox = hooks.outbox();
                outbox
                    .record(&txn, inst, EventType::MessageRead, json!({ "i": i }))
                    .await
                    .expect("record");
                txn.commit().await.expect("commit");
                outbox.committed();
            }
        }));
    }
    let mut reader =
        Reader::open(app.req(Method::GET, &format!("{}?after=0", stream_path(inst)))).await;
    let total = 20 + WRITERS * EACH;
    let events = reader.take(total).await;
    for w in writers {
        w.await.expect("writer");
    }
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(
        positions(&events),
        expected,
        "every event once, in commit order"
    );
    for e in &events {
        assert_eq!(
            e.id,
            e.data["position"].to_string(),
            "the SSE id is the position"
        );
        assert_eq!(e.event, e.data["type"].as_str().expect("type"));
        assert_eq!(e.data["instance_id"], inst.to_string());
        assert!(e.data["id"].as_str().expect("id").starts_with("msg_"));
    }
    // Nothing more than was recorded: the next thing is a heartbeat.
    emit(&app, inst, EventType::MessageSent, 1).await;
    let next = reader.next().await.expect("live");
    assert_eq!(next.data["position"], total as i64 + 1);
}

#[tokio::test]
async fn last_event_id_resumes_after_it_and_types_filter() {
    let app = TestApp::spawn().await;
    let inst = new_instance(&app).await;
    emit(&app, inst, EventType::MessageSent, 3).await;
    emit(&app, inst, EventType::MessageRead, 2).await;
    let mut first =
        Reader::open(app.req(Method::GET, &format!("{}?after=0", stream_path(inst)))).await;
    let seen = first.take(3).await;
    let last = seen[2].id.clone();
    drop(first);

    // `Last-Event-ID` wins over `after`.
    let mut resumed = Reader::open(
        app.req(Method::GET, &format!("{}?after=0", stream_path(inst)))
            .header("Last-Event-ID", &last),
    )
    .await;
    assert_eq!(positions(&resumed.take(2).await), [4, 5]);

    // An event id stands for its position.
    let by_id = seen[1].data["id"].as_str().expect("id").to_owned();
    let mut from_id =
        Reader::open(app.req(Method::GET, &format!("{}?after={by_id}", stream_path(inst)))).await;
    assert_eq!(positions(&from_id.take(3).await), [3, 4, 5]);

    let mut reads = Reader::open(app.req(
        Method::GET,
        &format!("{}?after=0&types=message.read", stream_path(inst)),
    ))
    .await;
    let got = reads.take(2).await;
    assert_eq!(positions(&got), [4, 5]);
    assert!(got.iter().all(|e| e.event == "message.read"));
    // Live events are filtered too.
    emit(&app, inst, EventType::MessageSent, 1).await;
    emit(&app, inst, EventType::MessageRead, 1).await;
    assert_eq!(reads.next().await.expect("live").data["position"], 7);

    send(app.req(
        Method::GET,
        &format!("{}?types=message.nope", stream_path(inst)),
    ))
    .await
    .assert_problem(422, "unknown_event_type");
    send(app.req(Method::GET, &format!("{}?after=x1", stream_path(inst))))
        .await
        .assert_problem(400, "invalid_parameter");
    send(app.req(Method::GET, &stream_path(Uuid::new_v4())))
        .await
        .assert_problem(404, "instance_not_found");
}

#[tokio::test]
async fn without_a_cursor_only_new_events_and_heartbeats_flow() {
    let app = TestApp::spawn_with(|f| f.merge(("streams.heartbeat_secs", 0.05))).await;
    let inst = new_instance(&app).await;
    emit(&app, inst, EventType::MessageSent, 2).await;
    let mut reader = Reader::open(app.req(Method::GET, &stream_path(inst))).await;
    // Recorded without an announcement: the periodic look finds it.
    let db = app.db.connect().await;
    let txn = db.begin().await.expect("begin");
    record(&txn, inst, EventType::MessageDelivered, json!({}))
        .await
        .expect("record");
    txn.commit().await.expect("commit");
    let got = reader.next().await.expect("event");
    assert_eq!(got.data["position"], 3, "old events are not replayed");
    assert_eq!(got.event, "message.delivered");
    emit(&app, inst, EventType::MessageSent, 1).await;
    assert_eq!(reader.next().await.expect("event").data["position"], 4);
    assert!(reader.heartbeats > 0, "heartbeats are comment lines");
}

#[tokio::test]
async fn scoped_keys_see_only_their_instances_and_revocation_ends_the_stream() {
    let app = TestApp::spawn_with(|f| f.merge(("streams.heartbeat_secs", 0.05))).await;
    let mine = new_instance(&app).await;
    let theirs = new_instance(&app).await;
    let made = send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": [mine], "scopes": ["read"], "name": "s" })),
    )
    .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let key = made.body["key"].as_str().expect("key").to_owned();
    let key_id = made.body["id"].as_str().expect("id").to_owned();

    send(
        app.http
            .get(app.url(&stream_path(theirs)))
            .bearer_auth(&key),
    )
    .await
    .assert_problem(404, "instance_not_found");
    let no_read = send(
        app.req(Method::POST, "/v1/keys")
            .json(&json!({ "instances": [mine], "scopes": ["send"], "name": "n" })),
    )
    .await;
    let no_read = no_read.body["key"].as_str().expect("key").to_owned();
    send(
        app.http
            .get(app.url(&stream_path(mine)))
            .bearer_auth(&no_read),
    )
    .await
    .assert_problem(403, "insufficient_scope");

    let mut all = Reader::open(app.http.get(app.url("/v1/events/stream")).bearer_auth(&key)).await;
    let mut admin = Reader::open(app.req(Method::GET, "/v1/events/stream")).await;
    emit(&app, theirs, EventType::MessageSent, 3).await;
    emit(&app, mine, EventType::MessageRead, 2).await;
    let got = all.take(2).await;
    assert!(
        got.iter()
            .all(|e| e.data["instance_id"] == mine.to_string()),
        "only its own instance's events: {got:?}"
    );
    assert!(
        got.iter()
            .all(|e| e.data["sequence"].as_i64() == e.id.parse().ok()),
        "ids are sequences"
    );
    let everything = admin.take(5).await;
    assert_eq!(
        everything
            .iter()
            .filter(|e| e.data["instance_id"] == theirs.to_string())
            .count(),
        3,
        "the admin key sees every instance"
    );
    // Resuming the all-instances stream by sequence.
    let mut resumed = Reader::open(
        app.req(Method::GET, "/v1/events/stream")
            .header("Last-Event-ID", &everything[2].id),
    )
    .await;
    let rest: Vec<String> = resumed.take(2).await.into_iter().map(|e| e.id).collect();
    let expected: Vec<String> = everything[3..].iter().map(|e| e.id.clone()).collect();
    assert_eq!(rest, expected);

    let revoked = send(app.req(Method::DELETE, &format!("/v1/keys/{key_id}"))).await;
    assert_eq!(revoked.status, 204, "{:?}", revoked.body);
    assert!(all.next().await.is_none(), "a revoked key ends the stream");
}

/// The all-instances stream resumes by sequence: an event of instance B
/// recorded first (the earlier id) but committed after a later event of
/// instance A was sent is neither missed nor doubled on resume, whether the
/// client resumes by the SSE id or by A's event id. On SQLite the single
/// writer cannot commit out of order, so there B commits first.
#[tokio::test]
async fn the_all_instances_stream_resumes_exactly_when_an_instance_commits_late() {
    let app = TestApp::spawn().await;
    let (a, b) = (new_instance(&app).await, new_instance(&app).await);
    let postgres = app.db.url.starts_with("postgres");
    let mut live = Reader::open(app.req(Method::GET, "/v1/events/stream")).await;

    let db = app.db.connect().await;
    let late_txn = db.begin().await.expect("begin");
    let mut late = app.webhooks.outbox();
    let late_id = late
        .record(
            &late_txn,
            b,
            EventType::MessageSent,
            json!({ "late": true }),
        )
        .await
        .expect("record");
    let sent_a = if postgres {
        emit(&app, a, EventType::MessageRead, 1).await;
        let got = live.next().await.expect("A's event");
        assert_eq!(got.data["instance_id"], a.to_string(), "{got:?}");
        late_txn.commit().await.expect("commit");
        late.committed();
        got
    } else {
        late_txn.commit().await.expect("commit");
        late.committed();
        emit(&app, a, EventType::MessageRead, 1).await;
        let got = live.take(2).await;
        assert_eq!(got[0].data["id"], late_id.as_str());
        got.into_iter().nth(1).expect("A's event")
    };
    drop(live);
    let a_id = sent_a.data["id"].as_str().expect("id").to_owned();
    if postgres {
        assert!(
            late_id < a_id,
            "B's event has the earlier id: paging by id would skip it"
        );
    }
    emit(&app, a, EventType::MessageDelivered, 1).await;
    let marker = {
        let mut r = Reader::open(app.req(Method::GET, "/v1/events/stream?after=0")).await;
        let all = r.take(3).await;
        all[2].data["id"].as_str().expect("id").to_owned()
    };

    let expected: Vec<String> = if postgres {
        vec![late_id.clone(), marker.clone()]
    } else {
        vec![marker.clone()]
    };
    for cursor in [sent_a.id.clone(), a_id.clone()] {
        let mut resumed = Reader::open(
            app.req(Method::GET, "/v1/events/stream")
                .header("Last-Event-ID", &cursor),
        )
        .await;
        let got: Vec<String> = resumed
            .take(expected.len())
            .await
            .iter()
            .map(|e| e.data["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(
            got, expected,
            "resumed after {cursor}: nothing missed or doubled"
        );
        // And nothing after: the next event is a new one.
        emit(&app, b, EventType::MessageRead, 1).await;
        let next = resumed.next().await.expect("live");
        assert_ne!(next.data["id"], a_id.as_str());
        assert!(!expected.contains(&next.data["id"].as_str().unwrap_or("").to_owned()));
    }
    db.close().await.ok();
}
