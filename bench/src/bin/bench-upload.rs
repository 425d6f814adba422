//! Upload memory benchmark: the gateway takes concurrent `media-file`
//! uploads; prints its resident memory at idle and at the peak while they
//! run.
//!
//! ```text
//! cargo run --release -p wagate-bench --bin bench-upload
//! cargo build --release --features sim && \
//!   BENCH_ENGINE=sim cargo run --release -p wagate-bench --bin bench-upload
//! ```
//! By default the gateway runs in this process on the scripted engine, which
//! takes the spooled file without reading it: that measures receiving.
//! `BENCH_ENGINE=sim` starts the simulator here and a gateway process with
//! the real WhatsApp engine (`BENCH_GATEWAY_BIN`, default
//! `target/release/wagate`, built with the `sim` feature), paired to it, so
//! each upload is also encrypted and streamed to the simulated media host;
//! the figures are that process's memory.
//! Settings (environment): `BENCH_UPLOADS` (concurrent uploads, default 10),
//! `BENCH_UPLOAD_MIB` (size of each, default 60), `DATABASE_URL` (default: a
//! SQLite file in a temp folder). The clients stream their bodies from a
//! 64 KiB buffer over plain TCP, so what grows is the gateway's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wagate_bench::{env_u64, rss_kib};

use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;
use wagate::app::App;
use wagate::config::Settings;
use wagate::engine::scripted::ScriptedEngine;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SENDER: &str = "6281500000001";
const RECIPIENT: &str = "6281500000002";
const MIB: u64 = 1024 * 1024;

fn settings(url: &str) -> Result<Settings, BoxError> {
    let figment = Settings::defaults_figment()
        .merge(("listen", "127.0.0.1:0"))
        .merge(("admin_key", "bench"))
        .merge(("log", "warn"))
        .merge(("database.url", url))
        .merge(("api.rate_limit_per_sec", 0.0))
        .merge(("messaging.pacing.min_interval_ms", 0))
        .merge(("messaging.pacing.jitter_ms", 0));
    Ok(Settings::from_figment(figment)?)
}

/// POSTs one multipart upload of `size` bytes (a PDF header, then filler)
/// and returns the answer's status line.
async fn upload(addr: std::net::SocketAddr, size: u64) -> Result<String, BoxError> {
    let boundary = format!("bench{}", Uuid::new_v4().simple());
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{RECIPIENT}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() as u64 + size + tail.len() as u64;
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "POST /v1/send/by-number/{SENDER}/media-file HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer bench\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(head.as_bytes()).await?;
    let mut chunk = vec![b'x'; 64 * 1024];
    chunk[..9].copy_from_slice(b"%PDF-1.7\n");
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        chunk[..9].fill(b'x');
        left -= n as u64;
    }
    stream.write_all(tail.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

/// The gateway under measurement: where it listens, and its process.
struct Target {
    addr: std::net::SocketAddr,
    pid: u32,
    stop: Box<dyn FnOnce()>,
}

/// The gateway in this process, on the scripted engine, with the sender
/// paired and online.
async fn in_process(url: &str) -> Result<Target, BoxError> {
    // A first build migrates the database; the paired sender goes in before
    // the gateway that serves the bench starts and resumes it.
    let migrated = App::build(settings(url)?, Arc::new(ScriptedEngine::new())).await?;
    let db = migrated.state().db.clone();
    drop(migrated);
    let instance = wagate::instances::store::create(&db, Some("bench".into())).await?;
    entity::instances::ActiveModel {
        id: Set(instance.id),
        status: Set(entity::instances::Status::Online),
        phone_number: Set(Some(SENDER.into())),
        ..Default::default()
    }
    .update(&db)
    .await?;

    let settings = settings(url)?;
    wagate::telemetry::init(&settings);
    let engine = ScriptedEngine::new();
    engine.resume_everyone();
    let app = App::build(settings, Arc::new(engine)).await?;
    let addr = app.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    wait_online(addr, instance.id.to_string()).await?;
    Ok(Target {
        addr,
        pid: std::process::id(),
        stop: Box::new(move || {
            let _ = stop.send(());
        }),
    })
}

/// A gateway process on the real engine, paired as the sender with the
/// simulator, which has the recipient on WhatsApp.
async fn with_simulator(url: &str, sim: &wasim::Sim) -> Result<Target, BoxError> {
    sim.register_number(RECIPIENT)?;
    let bin = std::env::var("BENCH_GATEWAY_BIN").unwrap_or_else(|_| "target/release/wagate".into());
    let addr: std::net::SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    // Only the settings named here: config refuses unknown WAGATE_* names.
    let mut child = std::process::Command::new(&bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", std::env::temp_dir())
        .env("DATABASE_URL", url)
        .env("WAGATE_LISTEN", addr.to_string())
        .env("WAGATE_ADMIN_KEY", "bench")
        .env("WAGATE_LOG", "warn")
        .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
        .env("WAGATE_WHATSAPP__WS_URL", sim.ws_url())
        .env("WAGATE_MESSAGING__PACING__MIN_INTERVAL_MS", "0")
        .env("WAGATE_MESSAGING__PACING__JITTER_MS", "0")
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{bin}: {e} (build it with --features sim)"))?;
    let pid = child.id();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the gateway did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = |path: String| {
        client
            .post(format!("http://{addr}{path}"))
            .bearer_auth("bench")
            .json(&serde_json::json!({}))
    };
    let created: serde_json::Value = api("/v1/instances".into()).send().await?.json().await?;
    let id = created["id"].as_str().ok_or("no instance id")?.to_owned();
    let login: serde_json::Value = api(format!("/v1/instances/{id}/login"))
        .send()
        .await?
        .json()
        .await?;
    let qr = login["qr"]["code"].as_str().ok_or("no QR code")?;
    sim.scan_qr(qr, SENDER)?;
    wait_online(addr, id).await?;
    Ok(Target {
        addr,
        pid,
        stop: Box::new(move || {
            let _ = child.kill();
            let _ = child.wait();
        }),
    })
}

async fn wait_online(addr: std::net::SocketAddr, id: String) -> Result<(), BoxError> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client
            .get(format!("http://{addr}/v1/instances/{id}"))
            .bearer_auth("bench")
            .send()
            .await?
            .json::<serde_json::Value>()
            .await?;
        if status["status"] == "online" {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the sender did not come online".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let uploads = env_u64("BENCH_UPLOADS", 10);
    let size = env_u64("BENCH_UPLOAD_MIB", 60) * MIB;
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.display()));
    let real_engine = std::env::var("BENCH_ENGINE").is_ok_and(|e| e == "sim");
    // Kept alive until the end: the real engine's WhatsApp server.
    let sim = if real_engine {
        wasim::install_crypto_provider();
        Some(wasim::Sim::start().await?)
    } else {
        None
    };
    let target = match &sim {
        Some(sim) => with_simulator(&url, sim).await?,
        None => in_process(&url).await?,
    };
    let (addr, pid) = (target.addr, target.pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..uploads)
        .map(|_| tokio::spawn(upload(addr, size)))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await??);
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let ok = answers.iter().filter(|a| a.contains(" 200 ")).count();
    let peak = peak.load(Ordering::Relaxed);
    let engine = if real_engine {
        format!(
            "real engine, {} uploads at the simulated media host",
            sim.as_ref().map_or(0, |s| s.upload_log().len())
        )
    } else {
        "scripted engine".to_owned()
    };
    println!(
        "bench-upload ({engine}): {uploads} concurrent uploads of {} MiB to media-file, {ok} answered 200, in {:.1} s",
        size / MIB,
        elapsed.as_secs_f64()
    );
    if ok != answers.len() {
        println!("  answers: {answers:?}");
    }
    println!(
        "resident memory: idle {} MiB, peak {} MiB, peak above idle {} MiB",
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024
    );
    (target.stop)();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
