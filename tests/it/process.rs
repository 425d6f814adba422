//! The real binary as a separate process: start-up, restart, signals and
//! configuration errors.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::harness::{ADMIN_KEY, TestDb, send};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wagate");

pub(crate) fn wagate(db_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("WAGATE_LISTEN", "127.0.0.1:0")
        .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
        .env("WAGATE_LOG", "info")
        .env("WAGATE_LOG_FORMAT", "json")
        // Tests poll fast; the limit has its own test.
        .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
        .env("WAGATE_MESSAGING__PACING__MIN_INTERVAL_MS", "0")
        .env("WAGATE_MESSAGING__PACING__JITTER_MS", "0")
        // One node per database, restarted as the same node: on PostgreSQL
        // it takes its leases back at once instead of waiting them out.
        .env("WAGATE_CLUSTER__NODE_ID", node_id_for(db_url).to_string());
    cmd
}

/// A stable node id for the one node a test runs on a database.
pub(crate) fn node_id_for(db_url: &str) -> uuid::Uuid {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        (salt, db_url).hash(&mut h);
        h.finish()
    };
    uuid::Uuid::from_u64_pair(half(1), half(2))
}

pub(crate) struct Running {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// Every line the process has printed on stdout so far.
    pub(crate) lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts the server and waits (up to a deadline) for the log line that
/// names the bound address.
pub(crate) fn start(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wagate");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(mut kept) = kept.lock() {
                kept.push(line.clone());
            }
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "listening"
                && v["target"] == "wagate::app"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server reports its address")
        .parse()
        .expect("socket address");
    Running { child, addr, lines }
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL, as a crash or an OOM kill would end it; returns once the
    /// process is gone.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then the exit status (waited for with a deadline).
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.is_ok_and(|s| s.success()), "kill -TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "exits after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn data_survives_a_restart_and_sigterm_exits_cleanly() {
    let db = TestDb::new().await;
    let http = crate::harness::http_client();

    let first = start(wagate(&db.url));
    let created = send(
        http.request(Method::POST, first.url("/v1/instances"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"name": "survivor"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let status = first.terminate();
    assert!(status.success(), "graceful exit: {status:?}");

    let second = start(wagate(&db.url));
    let got = send(
        http.request(Method::GET, second.url(&format!("/v1/instances/{id}")))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);
    assert!(second.terminate().success());
}

/// SQLite serves one gateway process: a second one on the same file would
/// resume the same sessions. It refuses to start and says why; once the
/// first is gone (even killed), the file can be served again. PostgreSQL
/// takes any number of processes.
#[tokio::test]
async fn a_second_process_on_one_sqlite_file_refuses_to_start() {
    let db = TestDb::new().await;
    let first = start(wagate(&db.url));
    if !db.url.starts_with("sqlite:") {
        let second = start(wagate(&db.url));
        assert!(second.terminate().success());
        assert!(first.terminate().success());
        return;
    }
    let mut second = wagate(&db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wagate");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while second.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second process is serving the same SQLite file");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = second.wait_with_output().expect("output");
    assert!(!out.status.success(), "the second process exited: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another wagate process is serving the SQLite database"),
        "{stderr}"
    );
    first.kill();
    let again = start(wagate(&db.url));
    assert!(again.terminate().success());
}

fn run_to_exit(mut cmd: Command) -> std::process::Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run wagate")
}

#[tokio::test]
async fn bad_configuration_names_the_setting() {
    let db = TestDb::new().await;
    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_DATABASE__MAX_CONNECTIONS", "lots");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("database.max_connections"), "{stderr}");

    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_LISTEN", "nowhere");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));

    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_CONFIG", "/nonexistent/wagate.toml");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WAGATE_CONFIG"));
}

#[tokio::test]
async fn no_admin_key_refuses_a_public_address() {
    let db = TestDb::new().await;
    let mut cmd = wagate(&db.url);
    cmd.env_remove("WAGATE_ADMIN_KEY")
        .env("WAGATE_LISTEN", "0.0.0.0:0");
    let out = run_to_exit(cmd);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WAGATE_ADMIN_KEY"));
}

#[tokio::test]
async fn no_admin_key_on_loopback_prints_a_generated_one() {
    let db = TestDb::new().await;
    let mut cmd = wagate(&db.url);
    cmd.env_remove("WAGATE_ADMIN_KEY");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut key = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = line.split("admin key is: ").nth(1) {
                key = Some(k.trim().to_owned());
            }
            if line.contains("\"listening\"") && line.contains("wagate::app") {
                let addr = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned));
                let _ = tx.send((key.take(), addr));
            }
        }
    });
    let (key, addr) = rx.recv_timeout(Duration::from_secs(60)).expect("started");
    let running = Running {
        child,
        addr: addr.expect("addr").parse().expect("addr"),
        lines: Default::default(),
    };
    let key = key.expect("the generated key is printed");
    let http = crate::harness::http_client();
    let ok = send(http.get(running.url("/v1/instances")).bearer_auth(&key)).await;
    assert_eq!(ok.status, 200);
    let other = send(
        http.get(running.url("/v1/instances"))
            .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert_eq!(other.status, 401);
    assert!(running.terminate().success());
}

#[tokio::test]
async fn openapi_command_prints_the_served_document() {
    let out = Command::new(BIN).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let app = crate::harness::TestApp::spawn().await;
    let served: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    assert_eq!(printed, served);
}

#[tokio::test]
async fn migrate_command_prepares_a_database() {
    let dir = tempfile::tempdir().expect("tmp");
    // A folder that does not exist yet: the server creates it.
    let url = format!("sqlite://{}/nested/wagate.db", dir.path().display());
    let out = run_to_exit({
        let mut c = wagate(&url);
        c.arg("migrate");
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("nested/wagate.db").is_file());
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let db = TestDb::new().await;
    // A long grace period: only the second signal can end the process soon.
    let mut cmd = wagate(&db.url);
    cmd.env("WAGATE_SHUTDOWN_GRACE_SECS", "600");
    let mut running = start(cmd);
    // A request whose body never comes keeps the graceful drain waiting.
    // `Expect: 100-continue` makes the server say when the handler is
    // reading it, so the signal surely finds it in flight.
    let mut slow = std::net::TcpStream::connect(running.addr).expect("connect");
    std::io::Write::write_all(
        &mut slow,
        b"POST /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-key\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("write");
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut slow, &mut buf).expect("100 Continue");
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("100"),
        "the handler reads the body"
    );
    let pid = running.child.id().to_string();
    for _ in 0..2 {
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()));
        std::thread::sleep(Duration::from_millis(300));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exits on the second signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(slow);
    assert_eq!(status.code(), Some(130));
}

/// The gateway binary with the scripted engine.
pub(crate) fn wagate_scripted(db_url: &str) -> Command {
    let cmd = wagate(db_url);
    let mut scripted = Command::new(env!("CARGO_BIN_EXE_wagate-scripted"));
    scripted.env_clear();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            scripted.env(key, value);
        }
    }
    scripted
}

fn max_connecting(running: &Running) -> u64 {
    let lines = running.lines.lock().map(|l| l.clone()).unwrap_or_default();
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "scripted session connecting")
        .filter_map(|v| v["fields"]["connecting"].as_u64())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn restarts_reconnect_every_stored_session_within_the_bound() {
    use entity::instances::{ActiveModel, Status};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    const N: usize = 10;
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let mut ids = Vec::new();
    for i in 0..N {
        let inst = wagate::instances::store::create(&conn, None)
            .await
            .expect("create");
        ActiveModel {
            id: Set(inst.id),
            status: Set(Status::Online),
            phone_number: Set(Some(format!("62813000000{i:02}"))),
            ..Default::default()
        }
        .update(&conn)
        .await
        .expect("update");
        ids.push(inst.id);
    }
    let http = crate::harness::http_client();
    for round in 1..=2 {
        let mut cmd = wagate_scripted(&db.url);
        cmd.env("WAGATE_WHATSAPP__RESUME_CONCURRENCY", "3")
            .env("SCRIPTED_CONNECT_DELAY_MS", "100");
        let running = start(cmd);
        for id in &ids {
            crate::harness::eventually("online", || async {
                let i = send(
                    http.request(Method::GET, running.url(&format!("/v1/instances/{id}")))
                        .bearer_auth(ADMIN_KEY),
                )
                .await
                .body;
                (i["status"] == "online").then_some(())
            })
            .await;
        }
        let max = max_connecting(&running);
        assert!(
            (1..=3).contains(&max),
            "round {round}: at most 3 at once, saw {max}"
        );
        assert!(running.terminate().success(), "round {round}: clean exit");
    }
    // One `instance.connected` per instance per start, each from `disconnected`.
    for id in &ids {
        let events = entity::webhook_events::Entity::find()
            .filter(entity::webhook_events::Column::InstanceId.eq(*id))
            .filter(entity::webhook_events::Column::EventType.eq("instance.connected"))
            .all(&conn)
            .await
            .expect("events");
        assert_eq!(events.len(), 2);
        assert!(
            events
                .iter()
                .all(|e| e.data["previous_status"] == "disconnected")
        );
    }
    conn.close().await.ok();
}

#[tokio::test]
async fn sigterm_while_sessions_resume_applies_every_queued_event_before_closing() {
    use entity::instances::{ActiveModel, Status};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    const N: usize = 40;
    let db = TestDb::new().await;
    let conn = db.connect().await;
    for i in 0..N {
        let inst = wagate::instances::store::create(&conn, None)
            .await
            .expect("create");
        ActiveModel {
            id: Set(inst.id),
            status: Set(Status::Online),
            phone_number: Set(Some(format!("6281310000{i:03}"))),
            ..Default::default()
        }
        .update(&conn)
        .await
        .expect("update");
    }
    conn.close().await.ok();
    let mut cmd = wagate_scripted(&db.url);
    cmd.env("WAGATE_WHATSAPP__RESUME_CONCURRENCY", "8")
        .env("SCRIPTED_CONNECT_DELAY_MS", "20");
    let running = start(cmd);
    // Stop while sessions are still coming online and their events queue.
    crate::harness::eventually("a session online", || async {
        (max_connecting(&running) > 0).then_some(())
    })
    .await;
    let lines = running.lines.clone();
    assert!(running.terminate().success(), "clean exit");
    let lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
    let lost: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("could not persist"))
        .collect();
    assert!(lost.is_empty(), "events lost at shutdown: {lost:?}");
}

#[tokio::test]
async fn sigterm_mid_send_and_mid_delivery_loses_neither() {
    use crate::receiver::{Answer, Receiver};
    use entity::instances::{ActiveModel, Status};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    const SENDER: &str = "6281400000001";
    let receiver = Receiver::start().await;
    receiver.set_default(Answer::Slow(200, 1500));
    let db = TestDb::new().await;
    let conn = db.connect().await;
    let inst = wagate::instances::store::create(&conn, None)
        .await
        .expect("create");
    ActiveModel {
        id: Set(inst.id),
        status: Set(Status::Online),
        phone_number: Set(Some(SENDER.into())),
        ..Default::default()
    }
    .update(&conn)
    .await
    .expect("update");
    let scripted = |db_url: &str| {
        let mut cmd = wagate_scripted(db_url);
        cmd.env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
            .env("WAGATE_SHUTDOWN_GRACE_SECS", "20")
            .env("SCRIPTED_SEND_DELAY_MS", "1500");
        cmd
    };
    let http = crate::harness::http_client();
    let running = start(scripted(&db.url));
    let instance_url = running.url(&format!("/v1/instances/{}", inst.id));
    crate::harness::eventually("online", || async {
        let i = send(http.get(&instance_url).bearer_auth(ADMIN_KEY))
            .await
            .body;
        (i["status"] == "online").then_some(())
    })
    .await;
    let hook = send(
        http.post(running.url(&format!("/v1/instances/{}/webhooks", inst.id)))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"url": receiver.url("/hook")})),
    )
    .await;
    assert_eq!(hook.status, 201, "{:?}", hook.body);
    let hook_id = hook.body["id"].as_str().expect("id").to_owned();

    // A delivery in flight: the receiver has it and answers slowly.
    let test = send(
        http.post(running.url(&format!(
            "/v1/instances/{}/webhooks/{hook_id}/test",
            inst.id
        )))
        .bearer_auth(ADMIN_KEY),
    )
    .await;
    assert!(test.status < 300, "{:?}", test.body);
    receiver.wait_for(1, Duration::from_secs(20)).await;

    // A send in flight: the engine has it and takes its time.
    let sending = tokio::spawn({
        let req = http
            .post(running.url(&format!("/send/by-number/{SENDER}")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"to": "6281400000002", "text": "across a restart"}));
        async move { send(req).await }
    });
    crate::harness::eventually("the send in the engine", || async {
        let lines = running.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .any(|l| l.contains("scripted send started"))
            .then_some(())
    })
    .await;

    // Blocking waits go to another thread: this one serves the receiver.
    let stopped = tokio::task::spawn_blocking(move || running.terminate())
        .await
        .expect("terminate");
    assert!(stopped.success(), "drains and exits 0");
    let sent = sending.await.expect("send task");
    assert_eq!(
        sent.status, 200,
        "the in-flight send was answered: {:?}",
        sent.body
    );
    let message_id = sent.body["message_id"].as_str().expect("id").to_owned();
    let row = entity::messages::Entity::find()
        .filter(entity::messages::Column::WaMessageId.eq(&message_id))
        .one(&conn)
        .await
        .expect("query");
    assert_eq!(
        row.map(|m| m.status).as_deref(),
        Some("sent"),
        "the send is recorded"
    );
    let delivered = entity::webhook_deliveries::Entity::find()
        .all(&conn)
        .await
        .expect("deliveries");
    assert!(
        delivered
            .iter()
            .any(|d| d.status == entity::webhook_deliveries::Status::Succeeded),
        "the in-flight attempt finished and was recorded: {:?}",
        delivered
            .iter()
            .map(|d| (&d.status, d.attempts, &d.last_error))
            .collect::<Vec<_>>()
    );

    // The next process delivers what the stop left pending.
    receiver.set_default(Answer::Status(200));
    let again = start(scripted(&db.url));
    crate::harness::eventually("message.sent delivered", || async {
        receiver
            .requests()
            .iter()
            .any(|r| {
                r.json()["type"] == "message.sent"
                    && r.json()["data"]["message_id"] == message_id.as_str()
            })
            .then_some(())
    })
    .await;
    let stopped = tokio::task::spawn_blocking(move || again.terminate())
        .await
        .expect("terminate");
    assert!(stopped.success());
    conn.close().await.ok();
}
