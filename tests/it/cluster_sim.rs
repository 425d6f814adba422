//! Gateway nodes with the real engine against one simulated WhatsApp
//! (issue 15): 30 paired instances spread over three nodes; one node
//! SIGKILLed, its instances back online on the others, never two sockets of
//! one device open at once, and sends made during the failover either sent
//! or answered 503 with Retry-After, each reaching the contact once however
//! often it is retried with its Idempotency-Key; a fourth node joining and
//! taking its share; SIGTERM handing over without waiting out the leases;
//! a node paused past its lease writing nothing once it wakes.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use uuid::Uuid;
use wasim::Sim;

use crate::cluster::{disconnects, owners, signal, within};
use crate::harness::{ADMIN_KEY, TestDb, http_client, send};
use crate::process::{Running, start, wagate};

const HEARTBEAT_SECS: u64 = 1;
const LEASE_SECS: u64 = 5;
const SECRET: &str = "a-cluster-secret-for-the-simulator-xx";
/// Paired instances, each through the real client's QR flow.
const N: usize = 30;
/// Messages each instance sends during the failover.
const PER_INSTANCE: usize = 2;
const FRIEND: &str = "6281299990000";

fn phone(i: usize) -> String {
    format!("62813555{i:05}")
}

async fn node(db: &TestDb, sim: &Sim, key: &str, id: Uuid) -> Running {
    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_WHATSAPP__WS_URL", sim.ws_url())
        .env("WAGATE_ENCRYPTION_KEY", key)
        .env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
        .env("WAGATE_CLUSTER__NODE_ID", id.to_string())
        .env("WAGATE_CLUSTER__HEARTBEAT_SECS", HEARTBEAT_SECS.to_string())
        .env("WAGATE_CLUSTER__LEASE_SECS", LEASE_SECS.to_string())
        .env("WAGATE_CLUSTER_SECRET", SECRET)
        .env("WAGATE_WHATSAPP__RESUME_CONCURRENCY", "4");
    tokio::task::spawn_blocking(move || start(cmd))
        .await
        .expect("the node starts")
}

async fn online(conn: &DatabaseConnection) -> usize {
    let row = conn
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM instances WHERE status = 'online' AND is_connected",
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get::<i64>("", "n").expect("n") as usize
}

/// The texts `FRIEND` received from `sender`.
fn texts_from(sim: &Sim, sender: &str) -> Vec<String> {
    sim.received(FRIEND)
        .into_iter()
        .filter(|r| r.from == sender)
        .filter_map(|r| {
            r.message.conversation.clone().or_else(|| {
                r.message
                    .extended_text_message
                    .as_option()
                    .and_then(|t| t.text.clone())
            })
        })
        .collect()
}

/// One send with its key, through the nodes in turn until it is sent. Every
/// answer on the way is 200 or 503 with Retry-After; the message id of the
/// send is returned.
async fn send_until_sent(
    http: &reqwest::Client,
    entries: &[String],
    sender: &str,
    key: &str,
    text: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS + 60);
    let mut attempt = 0usize;
    loop {
        let base = &entries[attempt % entries.len()];
        attempt += 1;
        let r = http
            .post(format!("{base}/v1/send/by-number/{sender}"))
            .bearer_auth(ADMIN_KEY)
            .header("Idempotency-Key", key)
            .json(&json!({ "to": FRIEND, "text": text }))
            .send()
            .await
            .expect("a surviving node answers");
        let status = r.status().as_u16();
        let retry_after = r.headers().contains_key("retry-after");
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        match status {
            200 => return body["message_id"].as_str().expect("message id").to_owned(),
            503 => assert!(retry_after, "503 without Retry-After: {body}"),
            _ => panic!("{key}: answered {status} during the failover: {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} never sent; last answer {body}"
        );
        // The retry a client makes on Retry-After, shortened for the test.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_fails_over_against_the_simulator_with_no_socket_twice() {
    if crate::harness::postgres_admin_url().is_none() {
        return; // a cluster needs PostgreSQL; SQLite is one node
    }
    let sim = Sim::start().await.expect("simulator");
    sim.register_number(FRIEND).expect("directory");
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let key = crate::secrets_at_rest::new_key();
    let ids = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(node(&db, &sim, &key, id).await);
    }
    let http = http_client();
    let admin = |m: Method, url: String| http.request(m, url).bearer_auth(ADMIN_KEY);
    within(60, "three live nodes", || async {
        let view = send(admin(Method::GET, nodes[2].url("/v1/admin/nodes"))).await;
        view.body["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["alive"] == true).count() == 3)
    })
    .await;

    // Paired one by one, each through a different node, which then holds
    // it: the nodes start with a fair share each.
    let mut instances = Vec::new();
    for i in 0..N {
        let node = &nodes[i % 3];
        let r = send(admin(Method::POST, node.url("/v1/instances")).json(&json!({}))).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let id: Uuid = r.body["id"].as_str().expect("id").parse().expect("uuid");
        let login = send(admin(
            Method::POST,
            node.url(&format!("/v1/instances/{id}/login")),
        ))
        .await;
        assert_eq!(login.status, 200, "{:?}", login.body);
        let code = login.body["qr"]["code"].as_str().expect("qr code");
        sim.scan_qr(code, &phone(i)).expect("the phone scans");
        within(60, "the instance online", || async {
            let r = send(admin(Method::GET, node.url(&format!("/v1/instances/{id}")))).await;
            r.body["status"] == "online"
        })
        .await;
        instances.push(id);
    }
    within(60, "every instance online under one lease", || async {
        owners(&conn).await.len() == N && online(&conn).await == N && sim.online_devices() == N
    })
    .await;
    let before = owners(&conn).await;
    for node_id in ids {
        assert_eq!(
            before.values().filter(|o| **o == node_id).count(),
            N / 3,
            "a fair share each: {before:?}"
        );
    }
    assert_eq!(sim.device_overlaps(), 0, "two sockets of one device");
    assert_eq!(sim.streams_replaced(), 0, "a stream replaced");

    // SIGKILL the first node; sends start at once on the two others.
    let victim: HashSet<Uuid> = before
        .iter()
        .filter(|(_, o)| **o == ids[0])
        .map(|(i, _)| *i)
        .collect();
    let killed = nodes.remove(0);
    let killed_at = tokio::time::Instant::now();
    tokio::task::spawn_blocking(move || killed.kill())
        .await
        .expect("killed");
    // The rows still say online (a killed node records nothing): the
    // simulator tells when the sockets really went, and came back.
    within(30, "the killed node's sockets gone", || async {
        sim.online_devices() == N - victim.len()
    })
    .await;
    let entries: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let mut sends = Vec::new();
    for (i, _) in instances.iter().enumerate() {
        for m in 0..PER_INSTANCE {
            let (http, entries) = (http.clone(), entries.clone());
            let (sender, key) = (phone(i), format!("failover-{i}-{m}"));
            sends.push(tokio::spawn(async move {
                let text = format!("pesan {i}.{m}");
                let id = send_until_sent(&http, &entries, &sender, &key, &text).await;
                (sender, key, text, id)
            }));
        }
    }
    within(
        LEASE_SECS + 15,
        "the killed node's instances online on the others",
        || async {
            let owners = owners(&conn).await;
            owners.len() == N
                && owners.values().all(|o| *o == ids[1] || *o == ids[2])
                && online(&conn).await == N
                && sim.online_devices() == N
        },
    )
    .await;
    println!(
        "failover of {} instances: {:.1} s after SIGKILL (lease {LEASE_SECS} s)",
        victim.len(),
        killed_at.elapsed().as_secs_f64()
    );
    let mut sent = Vec::new();
    for s in sends {
        sent.push(s.await.expect("a send task"));
    }
    let after = owners(&conn).await;
    assert!(victim.iter().all(|i| after.contains_key(i)));

    // Retried after the failover with the same keys: the first answer
    // again, nothing sent again.
    for (i, (sender, key, text, id)) in sent.iter().enumerate() {
        let again = send_until_sent(&http, &entries[i % 2..], sender, key, text).await;
        assert_eq!(&again, id, "{key} answered with another message");
    }
    // A last message per sender trails everything sent before it.
    for i in 0..N {
        let text = format!("terakhir {i}");
        send_until_sent(&http, &entries, &phone(i), &format!("last-{i}"), &text).await;
    }
    within(60, "every last message received", || async {
        (0..N).all(|i| texts_from(&sim, &phone(i)).contains(&format!("terakhir {i}")))
    })
    .await;
    for (sender, key, text, _) in &sent {
        let got = texts_from(&sim, sender);
        assert_eq!(
            got.iter().filter(|t| *t == text).count(),
            1,
            "{key} reached the contact once: {got:?}"
        );
    }
    assert_eq!(sim.device_overlaps(), 0, "two sockets of one device");
    assert_eq!(sim.streams_replaced(), 0, "a stream replaced");

    let joined = Uuid::new_v4();
    nodes.push(node(&db, &sim, &key, joined).await);
    a_joining_node_takes_its_share(&sim, &conn, joined).await;
    let stopped = nodes.remove(0);
    sigterm_hands_over(&sim, &conn, stopped, ids[1], [ids[2], joined]).await;
    a_paused_node_writes_nothing(&sim, &conn, (&nodes[0], ids[2]), (&nodes[1], joined)).await;
    drop(nodes);
    conn.close().await.ok();
}

/// The instances `node` holds a live lease on.
async fn held_by(conn: &DatabaseConnection, node: Uuid) -> HashSet<Uuid> {
    owners(conn)
        .await
        .into_iter()
        .filter(|(_, o)| *o == node)
        .map(|(i, _)| i)
        .collect()
}

/// A fourth node takes its share: the others hand one instance back per
/// heartbeat, each disconnected before the new node connects it.
async fn a_joining_node_takes_its_share(sim: &Sim, conn: &DatabaseConnection, joined: Uuid) {
    let share = N.div_ceil(3);
    within(60, "the joining node holding its share", || async {
        owners(conn).await.len() == N
            && held_by(conn, joined).await.len() == share
            && online(conn).await == N
            && sim.online_devices() == N
    })
    .await;
    assert_eq!(
        sim.device_overlaps(),
        0,
        "a hand-back left two sockets open"
    );
    assert_eq!(sim.streams_replaced(), 0, "a stream replaced");
}

/// SIGTERM disconnects the node's sessions, then gives its leases back:
/// none is left to run out, and the others connect them at once.
async fn sigterm_hands_over(
    sim: &Sim,
    conn: &DatabaseConnection,
    node: Running,
    stopped: Uuid,
    left: [Uuid; 2],
) {
    let held = held_by(conn, stopped).await;
    assert!(!held.is_empty(), "the node to stop holds instances");
    let asked = tokio::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || node.terminate())
        .await
        .expect("terminated");
    assert!(exit.success(), "a clean exit: {exit:?}");
    assert!(
        held_by(conn, stopped).await.is_empty(),
        "a lease of the stopped node still live after its exit"
    );
    within(
        LEASE_SECS + 15,
        "the stopped node's instances online on the others",
        || async {
            let owners = owners(conn).await;
            owners.len() == N
                && owners.values().all(|o| left.contains(o))
                && online(conn).await == N
                && sim.online_devices() == N
        },
    )
    .await;
    println!(
        "SIGTERM hand-over of {} instances: {:.1} s (lease {LEASE_SECS} s)",
        held.len(),
        asked.elapsed().as_secs_f64()
    );
    assert_eq!(sim.device_overlaps(), 0, "two sockets of one device");
    assert_eq!(sim.streams_replaced(), 0, "a stream replaced");
}

/// A node paused (SIGSTOP) past its lease cannot close its sockets: the
/// other node's logins replace them, as WhatsApp replaces an older stream.
/// Woken, the paused node hears of those replacements and of its lost
/// leases, and records nothing for the instances it lost; it then takes a
/// share back through the ordinary hand-back, with no socket twice.
async fn a_paused_node_writes_nothing(
    sim: &Sim,
    conn: &DatabaseConnection,
    (paused, paused_id): (&Running, Uuid),
    (other, other_id): (&Running, Uuid),
) {
    let held = held_by(conn, paused_id).await;
    assert!(!held.is_empty(), "the node to pause holds instances");
    signal(paused, "-STOP");
    let paused_at = tokio::time::Instant::now();
    within(
        LEASE_SECS + 15,
        "the paused node's sockets replaced by the other's",
        || async {
            held_by(conn, other_id).await.len() == N && sim.streams_replaced() == held.len() as u64
        },
    )
    .await;
    within(15, "every instance online on the other", || async {
        online(conn).await == N && sim.online_devices() == N
    })
    .await;
    println!(
        "SIGSTOP: {} instances online on the other node {:.1} s after the pause",
        held.len(),
        paused_at.elapsed().as_secs_f64()
    );
    let disconnects_before = disconnects(conn, &held).await;
    signal(paused, "-CONT");
    within(15, "the woken node saying it lost its leases", || async {
        let lines = paused.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .any(|l| l.contains("leases could not be renewed in time") || l.contains("lease lost"))
    })
    .await;
    within(60, "the woken node holding its share again", || async {
        held_by(conn, paused_id).await.len() == N / 2
            && owners(conn).await.len() == N
            && online(conn).await == N
            && sim.online_devices() == N
    })
    .await;
    assert_eq!(
        disconnects(conn, &held).await,
        disconnects_before,
        "the woken node recorded a disconnect for an instance it had lost"
    );
    assert_eq!(
        sim.device_overlaps(),
        held.len() as u64,
        "only the paused node's frozen sockets were ever open beside another"
    );
    assert_eq!(sim.streams_replaced(), held.len() as u64);
    // A stale `stream_replaced` would have left its reason behind.
    for id in &held {
        let view = send(
            http_client()
                .get(other.url(&format!("/v1/instances/{id}")))
                .bearer_auth(ADMIN_KEY),
        )
        .await;
        assert_eq!(view.body["status"], "online", "{:?}", view.body);
        assert_eq!(
            view.body["last_error"],
            serde_json::Value::Null,
            "{:?}",
            view.body
        );
    }
}
