//! Several gateway processes on one PostgreSQL database (issue 15): each
//! instance connected on exactly one node, failover after SIGKILL, hand-over
//! on SIGTERM, a joining node taking its share, and a paused node that wakes
//! after its lease writing nothing.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use entity::instances::{ActiveModel, Status};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, Statement};
use uuid::Uuid;

use crate::harness::{ADMIN_KEY, TestDb, send};
use crate::process::{Running, start, wagate_scripted};

const HEARTBEAT_SECS: u64 = 1;
const LEASE_SECS: u64 = 3;

fn node(db: &TestDb, id: Uuid) -> Running {
    node_with(db, id, &[])
}

fn node_with(db: &TestDb, id: Uuid, env: &[(&str, &str)]) -> Running {
    let mut cmd = wagate_scripted(&db.url);
    cmd.env("WAGATE_CLUSTER__NODE_ID", id.to_string())
        .env("WAGATE_CLUSTER__HEARTBEAT_SECS", HEARTBEAT_SECS.to_string())
        .env("WAGATE_CLUSTER__LEASE_SECS", LEASE_SECS.to_string())
        .env("WAGATE_WHATSAPP__RESUME_CONCURRENCY", "4")
        // A node that gives an instance up then hears of its disconnect,
        // which it must not record once the lease is gone.
        .env("SCRIPTED_ANNOUNCE_DISCONNECTS", "1")
        .envs(env.iter().copied());
    start(cmd)
}

async fn paired_instances(conn: &DatabaseConnection, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let inst = wagate::instances::store::create(conn, None)
            .await
            .expect("create");
        ActiveModel {
            id: Set(inst.id),
            // Paired but not connected anywhere: `all_online` then means
            // that sessions came up.
            status: Set(Status::Disconnected),
            phone_number: Set(Some(format!("6281400000{i:03}"))),
            ..Default::default()
        }
        .update(conn)
        .await
        .expect("update");
        ids.push(inst.id);
    }
    ids
}

/// Owner of each instance under a live lease.
pub(crate) async fn owners(conn: &DatabaseConnection) -> HashMap<Uuid, Uuid> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT instance_id, owner_node FROM instance_leases \
             WHERE owner_node IS NOT NULL AND lease_until > now()",
        ))
        .await
        .expect("leases");
    rows.iter()
        .map(|r| {
            (
                r.try_get("", "instance_id").expect("id"),
                r.try_get("", "owner_node").expect("owner"),
            )
        })
        .collect()
}

async fn all_online(conn: &DatabaseConnection) -> bool {
    let row = conn
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM instances WHERE status <> 'online'",
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get::<i64>("", "n").expect("n") == 0
}

/// Polls `check` until it holds, for at most `secs` seconds.
pub(crate) async fn within<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out ({secs} s) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times each instance's session started on `running`.
fn starts(running: &Running) -> HashMap<String, usize> {
    let lines = running.lines.lock().map(|l| l.clone()).unwrap_or_default();
    let mut seen = HashMap::new();
    for v in lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "scripted session connecting")
    {
        if let Some(id) = v["fields"]["instance_id"].as_str() {
            *seen.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    seen
}

pub(crate) fn signal(running: &Running, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &running.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig}");
}

#[tokio::test]
async fn nodes_share_instances_fail_over_hand_over_and_rebalance() {
    if crate::harness::postgres_admin_url().is_none() {
        return; // a cluster needs PostgreSQL; SQLite is one node
    }
    const N: usize = 30;
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let (a, b, c, d) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let node_a = node(&db, a);
    let node_b = node(&db, b);
    let node_c = node(&db, c);
    // The instances appear once all three see each other: a node that
    // started alone would claim everything and then rebalance, starting
    // some sessions twice (one after the other), which says nothing about
    // sharing.
    let http = crate::harness::http_client();
    within(30, "three live nodes", || async {
        let view = send(
            http.request(Method::GET, node_c.url("/v1/admin/nodes"))
                .bearer_auth(ADMIN_KEY),
        )
        .await;
        view.body["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["alive"] == true).count() == 3)
    })
    .await;
    let ids = paired_instances(&conn, N).await;

    within(60, "30 instances online, each under one lease", || async {
        let owners = owners(&conn).await;
        owners.len() == N && all_online(&conn).await
    })
    .await;
    // No instance started on two nodes.
    let mut started: HashMap<String, usize> = HashMap::new();
    for running in [&node_a, &node_b, &node_c] {
        for (id, n) in starts(running) {
            *started.entry(id).or_insert(0) += n;
        }
    }
    assert_eq!(started.len(), N, "every instance started somewhere");
    assert!(
        started.values().all(|n| *n == 1),
        "started once each: {started:?}"
    );
    let owners_now = owners(&conn).await;
    let held: Vec<usize> = [a, b, c]
        .iter()
        .map(|n| owners_now.values().filter(|o| *o == n).count())
        .collect();
    assert!(
        held.iter().all(|h| *h <= 10),
        "at most a fair share each: {held:?}"
    );

    // The admin view agrees, from any node.
    let view = send(
        http.request(Method::GET, node_b.url("/v1/admin/nodes"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(view.status, 200);
    assert_eq!(view.body["cluster"], true);
    assert_eq!(view.body["this_node"], b.to_string());
    let listed: i64 = view.body["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["instances"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(listed, N as i64);
    assert_eq!(
        view.body["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter(|n| n["leader"] == true)
            .count(),
        1,
        "one leader"
    );

    // SIGKILL: the others take its instances once its leases run out.
    let a_held: HashSet<Uuid> = owners_now
        .iter()
        .filter(|(_, o)| **o == a)
        .map(|(i, _)| *i)
        .collect();
    node_a.kill();
    within(
        LEASE_SECS + 15,
        "the killed node's instances on the others",
        || async {
            let owners = owners(&conn).await;
            owners.len() == N
                && owners.values().all(|o| *o == b || *o == c)
                && all_online(&conn).await
        },
    )
    .await;
    assert_eq!(a_held.len(), held[0]);

    // A joining node takes a share from the others.
    let node_d = node(&db, d);
    within(30, "the new node holding a share", || async {
        let owners = owners(&conn).await;
        owners.values().filter(|o| **o == d).count() >= 5 && all_online(&conn).await
    })
    .await;

    // SIGTERM hands over at once: its leases are released, not waited out.
    assert!(node_b.terminate().success(), "clean exit");
    let released = owners(&conn).await;
    assert!(
        released.values().all(|o| *o != b),
        "no lease of the stopped node is live after its exit"
    );
    within(
        LEASE_SECS + 15,
        "everything on the two nodes left",
        || async {
            let owners = owners(&conn).await;
            owners.len() == N
                && owners.values().all(|o| *o == c || *o == d)
                && all_online(&conn).await
        },
    )
    .await;

    // A node paused past its lease writes nothing once it wakes: its
    // instances go to the other node, and it drops its sessions.
    let c_before: HashSet<Uuid> = owners(&conn)
        .await
        .into_iter()
        .filter(|(_, o)| *o == c)
        .map(|(i, _)| i)
        .collect();
    assert!(!c_before.is_empty());
    signal(&node_c, "-STOP");
    within(
        LEASE_SECS + 15,
        "the paused node's instances on the other",
        || async {
            let owners = owners(&conn).await;
            owners.len() == N && owners.values().all(|o| *o == d) && all_online(&conn).await
        },
    )
    .await;
    let disconnects_before = disconnects(&conn, &c_before).await;
    signal(&node_c, "-CONT");
    within(
        15,
        "the woken node saying it no longer holds them",
        || async {
            let lines = node_c.lines.lock().map(|l| l.clone()).unwrap_or_default();
            lines.iter().any(|l| {
                l.contains("leases could not be renewed in time") || l.contains("lease lost")
            })
        },
    )
    .await;
    // Its own heartbeat makes it a member again; what it dropped stays down.
    within(15, "the woken node alive again", || async {
        let view = send(
            http.request(Method::GET, node_d.url("/v1/admin/nodes"))
                .bearer_auth(ADMIN_KEY),
        )
        .await;
        view.body["nodes"].as_array().is_some_and(|n| {
            n.iter()
                .any(|n| n["id"] == c.to_string() && n["alive"] == true)
        })
    })
    .await;
    assert_eq!(
        disconnects(&conn, &c_before).await,
        disconnects_before,
        "the woken node recorded no disconnect for the instances it lost"
    );
    drop(node_c);
    drop(node_d);
    assert_eq!(ids.len(), N);
    conn.close().await.ok();
}

/// `instance.disconnected` events recorded for `instances`.
pub(crate) async fn disconnects(conn: &DatabaseConnection, instances: &HashSet<Uuid>) -> usize {
    let rows = conn
        .query_all_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT instance_id FROM webhook_events WHERE type = 'instance.disconnected'",
        ))
        .await
        .expect("events");
    rows.iter()
        .filter_map(|r| r.try_get::<Option<Uuid>>("", "instance_id").ok().flatten())
        .filter(|i| instances.contains(i))
        .count()
}

/// A node holding only an instance that is still pairing is not above its
/// share: counting only paired instances made it hand the session back at
/// its next claim tick, so the QR flow died under the user (emit found no
/// live session).
#[tokio::test]
async fn a_session_mid_pairing_is_not_handed_back() {
    if crate::harness::postgres_admin_url().is_none() {
        return;
    }
    let db = TestDb::new().await;
    let settings = crate::harness::settings_with(&db, |f| {
        f.merge(("cluster.heartbeat_secs", HEARTBEAT_SECS))
            .merge(("cluster.lease_secs", LEASE_SECS))
    });
    let engine = wagate::engine::scripted::ScriptedEngine::new();
    let app = crate::harness::TestApp::spawn_scripted(db, settings, engine).await;
    let id = crate::pairing::new_instance(&app).await;
    let login = send(app.req(Method::POST, &format!("/v1/instances/{id}/login"))).await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    // Three renewals: the claim loop, on the same period, ticked meanwhile.
    let heartbeat = || async {
        let r = send(app.req(Method::GET, "/v1/admin/nodes")).await;
        r.body["nodes"][0]["last_heartbeat"]
            .as_str()
            .map(str::to_owned)
    };
    let mut seen = heartbeat().await;
    for _ in 0..3 {
        let before = seen.clone();
        seen = crate::harness::eventually("the next heartbeat", || async {
            let now = heartbeat().await;
            (now != before).then_some(now)
        })
        .await;
    }
    assert!(
        app.engine
            .emit(
                id,
                wagate::engine::EngineEvent::Paired {
                    jid: "6281400000999@s.whatsapp.net".into(),
                    lid: None,
                    phone_number: Some("6281400000999".into()),
                },
            )
            .await,
        "the pairing session was handed back"
    );
}

const SECRET: &str = "a-cluster-secret-of-forty-characters-xx";

/// A call that needs the live client, made to a node that does not hold the
/// instance, is answered by the node that does (issue 15): without the
/// forwarding the node asked has no session and answers 503 or 409.
#[tokio::test]
async fn any_node_answers_a_call_for_an_instance_another_holds() {
    if crate::harness::postgres_admin_url().is_none() {
        return;
    }
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let ids = paired_instances(&conn, 2).await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Nothing fails over here: leases long enough that a loaded machine
    // cannot let one lapse between renewals.
    let fixed = [
        ("WAGATE_CLUSTER__REBALANCE", "false"),
        ("WAGATE_CLUSTER__HEARTBEAT_SECS", "2"),
        ("WAGATE_CLUSTER__LEASE_SECS", "20"),
    ];
    let with_secret = [
        fixed[0],
        fixed[1],
        fixed[2],
        ("WAGATE_CLUSTER_SECRET", SECRET),
    ];
    let node_a = node_with(&db, a, &with_secret);
    within(30, "both online on A", || async {
        all_online(&conn).await && owners(&conn).await.values().filter(|o| **o == a).count() == 2
    })
    .await;
    let node_b = node_with(&db, b, &with_secret);
    let node_c = node_with(&db, c, &fixed);
    let http = crate::harness::http_client();
    let admin = |m: Method, url: String| http.request(m, url).bearer_auth(ADMIN_KEY);
    within(30, "B and C registered", || async {
        let view = send(admin(Method::GET, node_b.url("/v1/admin/nodes"))).await;
        view.body["nodes"].as_array().is_some_and(|n| n.len() == 3)
    })
    .await;

    // A send by the number of an instance A holds, made to B.
    let sent = send(
        admin(Method::POST, node_b.url("/v1/send/by-number/6281400000000"))
            .json(&serde_json::json!({ "to": "6281299990000", "text": "lewat B" })),
    )
    .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let mid = sent.body["message_id"].as_str().expect("id");
    assert_eq!(sent.body["instance_id"], ids[0].to_string());
    // A read answers from the database on any node.
    let read = send(admin(
        Method::GET,
        node_c.url(&format!("/v1/instances/{}/messages/{mid}", ids[0])),
    ))
    .await;
    assert_eq!(read.status, 200, "{:?}", read.body);

    // Not only sends: a presence change through B reaches A's session.
    let presence = format!("/v1/instances/{}/presence", ids[1]);
    let r = send(
        admin(Method::PUT, node_b.url(&presence)).json(&serde_json::json!({ "available": true })),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A number check names its instance in the body: forwarded too, and
    // without one it goes to a node holding any online instance.
    for body in [
        serde_json::json!({ "numbers": ["6281299990000"], "instance_id": ids[0] }),
        serde_json::json!({ "numbers": ["6281299990000"] }),
    ] {
        let r = send(admin(Method::POST, node_b.url("/v1/numbers/check")).json(&body)).await;
        assert_eq!(r.status, 200, "{body}: {:?}", r.body);
        assert_eq!(r.body["results"][0]["registered"], true, "{:?}", r.body);
    }

    // C has no secret: it cannot forward and says so, with Retry-After.
    let r = http
        .request(Method::PUT, node_c.url(&presence))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({ "available": true }))
        .send()
        .await
        .expect("C answers");
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.expect("problem");
    assert_eq!(body["code"], "instance_unavailable");

    // A caller without a valid key is answered by B itself, not forwarded.
    let r = send(
        http.request(Method::PUT, node_b.url(&presence))
            .bearer_auth("wak_not_a_key")
            .json(&serde_json::json!({ "available": true })),
    )
    .await;
    assert_eq!(r.status, 401);
    // A forged forwarding header is refused before any handler runs.
    let r = send(
        admin(Method::PUT, node_a.url(&presence))
            .header("x-wagate-forwarded", "1.00")
            .json(&serde_json::json!({ "available": true })),
    )
    .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.body["code"], "invalid_forward_signature");
}

/// Writes from a session carry the lease's epoch (issue 15): once another
/// node took the lease over in the database, the old node's next status
/// change and its next inbound message are refused, though its own clock
/// still trusts the lease, and it drops the session.
#[tokio::test]
async fn a_session_whose_lease_was_taken_over_writes_nothing() {
    if crate::harness::postgres_admin_url().is_none() {
        return; // epochs exist on PostgreSQL only; SQLite is one node
    }
    use crate::pairing::{events, new_instance, pair_and_connect, types};
    use wagate::engine::EngineEvent;
    use wagate::engine::scripted::Call;

    let db = TestDb::new().await;
    // Renewals far apart: the takeover below is found by the fence, not
    // by a renewal that happens to come first.
    let settings = crate::harness::settings_with(&db, |f| {
        f.merge(("cluster.heartbeat_secs", 60))
            .merge(("cluster.lease_secs", 180))
            .merge(("cluster.rebalance", false))
    });
    let engine = wagate::engine::scripted::ScriptedEngine::new();
    let app = crate::harness::TestApp::spawn_scripted(db, settings, engine).await;
    let (status_id, message_id) = (new_instance(&app).await, new_instance(&app).await);
    pair_and_connect(&app, status_id, "6281400000901").await;
    pair_and_connect(&app, message_id, "6281400000902").await;

    let conn = app.db.connect().await;
    let usurper = Uuid::new_v4();
    for id in [status_id, message_id] {
        let taken = conn
            .execute_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "UPDATE instance_leases SET owner_node = $1, epoch = epoch + 1 \
                 WHERE instance_id = $2",
                [usurper.into(), id.into()],
            ))
            .await
            .expect("take over");
        assert_eq!(taken.rows_affected(), 1);
    }
    let before_status = events(&app, status_id).await.len();
    let before_message = events(&app, message_id).await.len();

    assert!(
        app.engine
            .emit(
                status_id,
                EngineEvent::Disconnected {
                    reason: "late news from a stale node".into()
                }
            )
            .await
    );
    let inbound = wagate::engine::Inbound {
        from_me: false,
        chat_subject: None,
        message_id: "3EB0STALE".into(),
        from: wagate::engine::Party {
            jid: "6281299990000@s.whatsapp.net".into(),
            phone_number: Some("6281299990000".into()),
            lid: None,
        },
        chat: "6281299990000@s.whatsapp.net".into(),
        timestamp: chrono::Utc::now(),
        content: wagate::engine::Content::Text {
            text: "stale".into(),
            quoted: None,
            mentions: Vec::new(),
        },
    };
    assert!(
        app.engine
            .emit(message_id, EngineEvent::Message(Box::new(inbound)))
            .await
    );
    // Refused writes end their sessions here: that is when both were seen.
    for id in [status_id, message_id] {
        crate::harness::eventually("the fenced-out session stopped", || async {
            app.engine
                .calls()
                .contains(&Call::Disconnect(id))
                .then_some(())
        })
        .await;
    }
    let status = send(app.req(Method::GET, &format!("/v1/instances/{status_id}"))).await;
    assert_eq!(status.body["status"], "online", "{:?}", status.body);
    assert_eq!(status.body["last_error"], serde_json::Value::Null);
    let after = events(&app, status_id).await;
    assert_eq!(after.len(), before_status, "{:?}", types(&after));
    let after = events(&app, message_id).await;
    assert_eq!(after.len(), before_message, "{:?}", types(&after));
    let stored = conn
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM messages WHERE wa_message_id = $1",
            ["3EB0STALE".into()],
        ))
        .await
        .expect("count")
        .expect("row");
    assert_eq!(stored.try_get::<i64>("", "n").expect("n"), 0);
    conn.close().await.ok();
}
