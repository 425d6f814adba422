//! Gateway benchmark against the simulator: N instances paired and
//! connected, the gateway's RSS per connected instance, the time to bring
//! all N back after a restart (and the most handshakes the simulator saw
//! at once, against the gateway's bound), and sends per second across
//! instances with every message's delivered and read receipts flowing back
//! to a webhook receiver.
//!
//! Needs a gateway binary built with the simulator feature:
//!   cargo build --release --features sim
//!   cargo run --release -p wasim --bin bench -- [N] [SENDS] [BOUND]
//! `WASIM_GATEWAY_BIN` names the binary (default target/release/wagate),
//! `DATABASE_URL` the database (default: a fresh SQLite file),
//! `BENCH_GATEWAY_LOG` a file for the gateway's log (level
//! `BENCH_GATEWAY_LOG_LEVEL`, default warn).
//! `bench realistic …` seeds every account with state and runs a mixed
//! workload instead (see `realistic.rs`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasim::Sim;

mod db_size;
mod realistic;
mod receiver;

const ADMIN_KEY: &str = "bench-admin-key";
const CONTACT: &str = "6289900000000";

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> BenchResult<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_gateway(
    bin: &str,
    db: &str,
    ws_url: &str,
    port: u16,
    bound: usize,
    paced: bool,
) -> BenchResult<Gateway> {
    // Only the settings named here: config refuses unknown WAGATE_* names.
    let mut command = Command::new(bin);
    if !paced {
        // Capacity, not policy: pacing would cap each instance at one
        // message per two seconds.
        command
            .env("WAGATE_MESSAGING__PACING__MIN_INTERVAL_MS", "0")
            .env("WAGATE_MESSAGING__PACING__JITTER_MS", "0");
    }
    let child = command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db)
        .env("WAGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
        .env(
            "WAGATE_LOG",
            std::env::var("BENCH_GATEWAY_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
        .env("WAGATE_WHATSAPP__WS_URL", ws_url)
        .env("WAGATE_WHATSAPP__RESUME_CONCURRENCY", bound.to_string())
        // The webhook receiver is on loopback.
        .env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
        .stdout(log_file()?)
        .spawn()?;
    let gateway = Gateway {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("{}/healthz", gateway.base))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("the gateway did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(gateway)
}

/// The gateway's log: appended to `BENCH_GATEWAY_LOG` if set, else dropped.
fn log_file() -> BenchResult<Stdio> {
    Ok(match std::env::var_os("BENCH_GATEWAY_LOG") {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .into(),
        None => Stdio::null(),
    })
}

fn rss_kib(pid: u32) -> BenchResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

async fn wait_online(sim: &Sim, n: usize, within: Duration) -> BenchResult<Duration> {
    let started = Instant::now();
    while sim.online_devices() < n {
        if started.elapsed() > within {
            return Err(format!("{} of {n} online after {within:?}", sim.online_devices()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// Waits until the gateway reports every instance `online`.
async fn wait_gateway_online(
    http: &reqwest::Client,
    base: &str,
    ids: &[String],
    within: Duration,
) -> BenchResult<()> {
    let started = Instant::now();
    let mut waiting: Vec<&String> = ids.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for id in waiting {
            let i = api(
                http,
                reqwest::Method::GET,
                format!("{base}/v1/instances/{id}"),
                Value::Null,
            )
            .await?;
            if i["status"] != "online" {
                still.push(id);
            }
        }
        waiting = still;
        if started.elapsed() > within {
            return Err(format!("{} instances not online after {within:?}", waiting.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn api(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> BenchResult<Value> {
    let response = http
        .request(method, url)
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{status}: {value}").into());
    }
    Ok(value)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    if std::env::args().nth(1).as_deref() == Some("realistic") {
        return realistic::run(std::env::args().skip(2).collect()).await;
    }
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let sends: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let bound: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(8);
    let bin = std::env::var("WASIM_GATEWAY_BIN").unwrap_or_else(|_| "target/release/wagate".into());
    let dir = tempfile::tempdir()?;
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));

    let sim = Sim::start().await?;
    sim.register_number(CONTACT)?;
    let hooks = receiver::Receiver::start().await?;
    let port = free_port()?;
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port, bound, false).await?;
    let http = reqwest::Client::new();
    let base = gateway.base.clone();
    let idle_rss = rss_kib(gateway.child.id())?;

    let (phones, ids) = pair_all(&http, &base, &sim, n).await?;
    let rss = rss_kib(gateway.child.id())?;
    println!(
        "gateway RSS: {:.1} MiB idle, {:.1} MiB with {n} connected, {:.2} MiB per connected instance",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        (rss.saturating_sub(idle_rss)) as f64 / 1024.0 / n as f64
    );

    drop(gateway);
    wait_online(&sim, 0, Duration::from_secs(60)).await?;
    sim.reset_most_handshakes();
    let restart = Instant::now();
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port, bound, false).await?;
    let back = match wait_online(&sim, n, Duration::from_secs(600)).await {
        Ok(back) => back,
        Err(e) => {
            let offline: Vec<&String> = phones.iter().filter(|p| !sim.is_online(p, 1)).collect();
            return Err(format!("{e}; offline: {offline:?}").into());
        }
    };
    wait_gateway_online(&http, &gateway.base, &ids, Duration::from_secs(600)).await?;
    let most = sim.most_handshakes();
    println!(
        "restart: all {n} reconnected in {:.1?} (process start included: {:.1?}); \
         at most {most} handshakes at once, bound {bound}: {}",
        back,
        restart.elapsed(),
        if most <= bound { "held" } else { "EXCEEDED" }
    );

    api(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/webhooks", gateway.base),
        json!({ "url": hooks.url() }),
    )
    .await?;
    send_all(&http, &gateway.base, &sim, &phones, sends, &hooks).await
}

/// Creates `n` instances and pairs each as its own phone number.
async fn pair_all(
    http: &reqwest::Client,
    base: &str,
    sim: &Sim,
    n: usize,
) -> BenchResult<(Vec<String>, Vec<String>)> {
    let pairing = Instant::now();
    let mut phones = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("62812{:08}", i);
        let created = api(
            http,
            reqwest::Method::POST,
            format!("{base}/v1/instances"),
            json!({}),
        )
        .await?;
        let id = created["id"].as_str().ok_or("no id")?.to_owned();
        let login = api(
            http,
            reqwest::Method::POST,
            format!("{base}/v1/instances/{id}/login"),
            json!({}),
        )
        .await?;
        let qr = login["qr"]["code"].as_str().ok_or("no QR code")?;
        sim.scan_qr(qr, &phone)?;
        phones.push(phone);
        ids.push(id);
    }
    wait_gateway_online(http, base, &ids, Duration::from_secs(600)).await?;
    println!(
        "paired and connected: {n} instances in {:.1?}",
        pairing.elapsed()
    );
    Ok((phones, ids))
}

/// Sends `sends` texts round-robin across the instances, 64 requests in
/// flight; the contact's phone delivers and reads each one as soon as the
/// gateway accepted it. Waits for every message's `message.sent` and
/// `message.read` webhooks (a `delivered` that the gateway handles after
/// the `read` emits nothing: statuses only move forward).
async fn send_all(
    http: &reqwest::Client,
    base: &str,
    sim: &Sim,
    phones: &[String],
    sends: usize,
    hooks: &receiver::Receiver,
) -> BenchResult<()> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(sends);
    // The API answers once the stanza is on the socket; the simulator may
    // not have taken it in yet. Those receipts go out after the sends.
    let mut later = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut accepted = |done: Option<Result<Option<String>, tokio::task::JoinError>>| {
        if let Some(Ok(Some(id))) = done {
            // The receipts go out while the other sends are still running.
            if sim.deliver(&id).is_ok() {
                let _ = sim.read(&id);
            } else {
                later.push(id.clone());
            }
            ids.push(id);
        }
    };
    for i in 0..sends {
        let (http, base) = (http.clone(), base.to_owned());
        let phone = phones[i % phones.len()].clone();
        tasks.spawn(async move {
            api(
                &http,
                reqwest::Method::POST,
                format!("{base}/send/by-number/{phone}"),
                json!({ "to": CONTACT, "text": "bench" }),
            )
            .await
            .ok()
            .and_then(|v| v["message_id"].as_str().map(str::to_owned))
        });
        while tasks.len() >= 64 {
            accepted(tasks.join_next().await);
        }
    }
    while !tasks.is_empty() {
        accepted(tasks.join_next().await);
    }
    let ok = ids.len();
    let elapsed = started.elapsed();
    println!(
        "sends: {ok}/{sends} accepted in {elapsed:.1?}, {:.0} per second across {} instances",
        ok as f64 / elapsed.as_secs_f64(),
        phones.len()
    );
    let mut refused = 0;
    for id in &later {
        let known = Instant::now() + Duration::from_secs(5);
        while sim.deliver(id).is_err() && Instant::now() < known {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        refused += usize::from(sim.read(id).is_err());
    }
    if refused > 0 {
        println!("  the simulator never took in {refused} sent messages");
    }
    // Up to a minute for the last webhooks; then what is missing is a
    // finding to print, not a reason to hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut report = Instant::now() + Duration::from_secs(10);
    let wanted = ["message.sent", "message.read"];
    while wanted.iter().any(|t| hooks.count(t) < ok) && Instant::now() < deadline {
        if Instant::now() > report {
            println!(
                "  waiting for webhooks: {:?}",
                wanted.map(|t| (t, hooks.count(t)))
            );
            report += Duration::from_secs(10);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unread: Vec<&String> = ids
        .iter()
        .filter(|id| !hooks.has("message.read", id))
        .collect();
    if !unread.is_empty() {
        println!(
            "  MISSING: no message.read webhook after 60 s for {} of {ok} messages, e.g. {:?}",
            unread.len(),
            &unread[..unread.len().min(3)]
        );
    }
    let all = started.elapsed();
    let webhooks: usize = ["message.sent", "message.delivered", "message.read"]
        .iter()
        .map(|t| hooks.count(t))
        .sum();
    println!(
        "receipts: message.sent for {} and message.read for {} of {ok} messages ({} \
         message.delivered before their read) received {all:.1?} after the first send, {:.0} \
         webhooks per second",
        hooks.count("message.sent"),
        hooks.count("message.read"),
        hooks.count("message.delivered"),
        webhooks as f64 / all.as_secs_f64()
    );
    Ok(())
}
