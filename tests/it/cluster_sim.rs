//! Three gateway nodes with the real engine against one simulated WhatsApp
//! (issue 15): paired instances spread over the nodes, one node SIGKILLed,
//! its instances back online on the others, never two sockets of one
//! device open at once, and sends made during the failover either sent or
//! answered 503 with Retry-After, each reaching the contact once however
//! often it is retried with its Idempotency-Key.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::json;
use uuid::Uuid;
use wasim::Sim;

use crate::cluster::{owners, within};
use crate::harness::{ADMIN_KEY, TestDb, http_client, send};
use crate::process::{Running, start, wagate};

const HEARTBEAT_SECS: u64 = 1;
const LEASE_SECS: u64 = 5;
const SECRET: &str = "a-cluster-secret-for-the-simulator-xx";
/// Paired instances: enough that every node holds some, few enough to pair
/// one by one through the real client quickly.
const N: usize = 6;
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
    drop(nodes);
    conn.close().await.ok();
}
