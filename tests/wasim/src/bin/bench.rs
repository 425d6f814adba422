//! Gateway benchmark against the simulator: N instances paired and
//! connected, the gateway's RSS per connected instance, the time to bring
//! all N back after a restart, and sends per second across instances.
//!
//! Needs a gateway binary built with the simulator feature:
//!   cargo build --release --features sim
//!   cargo run --release -p wasim --bin bench -- [N] [SENDS]
//! `WASIM_GATEWAY_BIN` names the binary (default target/release/wagate),
//! `DATABASE_URL` the database (default: a fresh SQLite file).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasim::Sim;

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

async fn start_gateway(bin: &str, db: &str, ws_url: &str, port: u16) -> BenchResult<Gateway> {
    // Only the settings named here: config refuses unknown WAGATE_* names.
    let child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db)
        .env("WAGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
        .env("WAGATE_LOG", "warn")
        .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
        .env("WAGATE_WHATSAPP__WS_URL", ws_url)
        .stdout(Stdio::null())
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
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200);
    let sends: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let bin = std::env::var("WASIM_GATEWAY_BIN").unwrap_or_else(|_| "target/release/wagate".into());
    let dir = tempfile::tempdir()?;
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));

    let sim = Sim::start().await?;
    sim.register_number(CONTACT)?;
    let port = free_port()?;
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port).await?;
    let http = reqwest::Client::new();
    let base = gateway.base.clone();
    let idle_rss = rss_kib(gateway.child.id())?;

    let pairing = Instant::now();
    let mut phones = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("62812{:08}", i);
        let created = api(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/instances"),
            json!({}),
        )
        .await?;
        let id = created["id"].as_str().ok_or("no id")?.to_owned();
        let login = api(
            &http,
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
    wait_gateway_online(&http, &base, &ids, Duration::from_secs(600)).await?;
    println!(
        "paired and connected: {n} instances in {:.1?}",
        pairing.elapsed()
    );
    let rss = rss_kib(gateway.child.id())?;
    println!(
        "gateway RSS: {:.1} MiB idle, {:.1} MiB with {n} connected, {:.2} MiB per connected instance",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        (rss.saturating_sub(idle_rss)) as f64 / 1024.0 / n as f64
    );

    drop(gateway);
    wait_online(&sim, 0, Duration::from_secs(60)).await?;
    let restart = Instant::now();
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port).await?;
    let back = wait_online(&sim, n, Duration::from_secs(600)).await?;
    wait_gateway_online(&http, &gateway.base, &ids, Duration::from_secs(600)).await?;
    println!(
        "restart: all {n} reconnected in {:.1?} (process start included: {:.1?})",
        back,
        restart.elapsed()
    );

    let started = Instant::now();
    let mut ok = 0usize;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sends {
        let (http, base, phone) = (http.clone(), gateway.base.clone(), phones[i % n].clone());
        tasks.spawn(async move {
            api(
                &http,
                reqwest::Method::POST,
                format!("{base}/send/by-number/{phone}"),
                json!({ "to": CONTACT, "text": "bench" }),
            )
            .await
            .is_ok()
        });
        while tasks.len() >= 64 {
            if let Some(Ok(true)) = tasks.join_next().await {
                ok += 1;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(true) = done {
            ok += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "sends: {ok}/{sends} accepted in {elapsed:.1?}, {:.0} per second across {n} instances",
        ok as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
