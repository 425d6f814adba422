//! Event stream benchmark: many open SSE streams on one gateway (in this
//! process, with its database), events fanned out to all of them.
//!
//! Prints the process RSS before and with the streams open (the clients'
//! sockets and tasks live in this process too, so the per-stream figure is
//! an upper bound), the CPU time spent fanning events out, and how long
//! every stream took to receive every event.
//!
//! ```text
//! cargo run --release -p wagate-bench --bin bench-streams
//! ```
//! Settings (environment): `DATABASE_URL` (default: a SQLite file in a temp
//! folder), `BENCH_STREAMS` (default 1000), `BENCH_INSTANCES` (streams are
//! spread over them, default 10), `BENCH_EVENTS` (per instance, default
//! 100), `BENCH_RATE` (events per second in all, default 200).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wagate_bench::env_u64;

use sea_orm::TransactionTrait;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use wagate::app::App;
use wagate::config::Settings;
use wagate::webhooks::EventType;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User plus system CPU time of this process, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line.
    (ticks(11) + ticks(12)) / 100.0
}

/// Opens one stream with a plain HTTP/1.0 request (no chunked framing)
/// and counts the events that arrive.
async fn client(
    addr: std::net::SocketAddr,
    instance: Uuid,
    received: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET /v1/instances/{instance}/events/stream HTTP/1.0\r\n\
         Host: bench\r\nAuthorization: Bearer bench\r\nAccept: text/event-stream\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 8192];
    let mut carry: Vec<u8> = Vec::new();
    let mut headers_done = false;
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        carry.extend_from_slice(&buf[..n]);
        if !headers_done {
            let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !carry.starts_with(b"HTTP/1.0 200") && !carry.starts_with(b"HTTP/1.1 200") {
                return Err(String::from_utf8_lossy(&carry[..end]).into_owned().into());
            }
            carry.drain(..end + 4);
            headers_done = true;
            opened.fetch_add(1, Ordering::Relaxed);
        }
        // Each event ends with an empty line; keep a partial one.
        while let Some(end) = carry.windows(2).position(|w| w == b"\n\n") {
            if carry.starts_with(b"id:") || carry.starts_with(b"event:") {
                received.fetch_add(1, Ordering::Relaxed);
            }
            carry.drain(..end + 2);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let streams = env_u64("BENCH_STREAMS", 1000);
    let instances = env_u64("BENCH_INSTANCES", 10).max(1);
    let events = env_u64("BENCH_EVENTS", 100);
    let rate = env_u64("BENCH_RATE", 200).max(1);
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display()));
    let figment = Settings::defaults_figment()
        .merge(("listen", "127.0.0.1:0"))
        .merge(("admin_key", "bench"))
        .merge(("log", "warn"))
        .merge(("database.url", url.as_str()))
        .merge(("database.max_connections", 16))
        .merge(("api.rate_limit_per_sec", 0.0))
        .merge(("streams.heartbeat_secs", 30.0));
    let settings = Settings::from_figment(figment)?;
    wagate::telemetry::init(&settings);
    let engine = Arc::new(wagate::engine::scripted::ScriptedEngine::new());
    let app = App::build(settings, engine).await?;
    let addr = app.local_addr();
    let db = app.state().db.clone();
    let hooks = app.state().webhooks.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut ids = Vec::new();
    for i in 0..instances {
        ids.push(
            wagate::instances::store::create(&db, Some(format!("bench-{i}")))
                .await?
                .id,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_mib();

    let received = Arc::new(AtomicU64::new(0));
    let opened = Arc::new(AtomicU64::new(0));
    let began = Instant::now();
    let mut clients = Vec::new();
    for n in 0..streams {
        let instance = ids[usize::try_from(n % instances)?];
        clients.push(tokio::spawn(client(
            addr,
            instance,
            received.clone(),
            opened.clone(),
        )));
    }
    while opened.load(Ordering::Relaxed) < streams {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if began.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {} streams opened", opened.load(Ordering::Relaxed)).into());
        }
    }
    let open_took = began.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = rss_mib();

    let total_events = events * instances;
    let expected = events * streams;
    let cpu_before = cpu_secs();
    let fan_began = Instant::now();
    for n in 0..total_events {
        let due = fan_began + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let instance = ids[usize::try_from(n % instances)?];
        let txn = db.begin().await?;
        let mut outbox = hooks.outbox();
        outbox
            .record(&txn, instance, EventType::MessageSent, json!({ "n": n }))
            .await?;
        txn.commit().await?;
        outbox.committed();
    }
    let produced = fan_began.elapsed();
    while received.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if fan_began.elapsed() > Duration::from_secs(300) {
            break;
        }
    }
    let all_in = fan_began.elapsed();
    let cpu = cpu_secs() - cpu_before;
    let got = received.load(Ordering::Relaxed);

    println!(
        "bench-streams on {backend}: {streams} streams over {instances} instances, \
         {total_events} events at {rate}/s"
    );
    println!(
        "opened {streams} streams in {:.2} s",
        open_took.as_secs_f64()
    );
    println!(
        "RSS: {rss_before:.1} MiB before, {rss_open:.1} MiB with the streams open \
         ({:.1} KiB per stream, clients included)",
        (rss_open - rss_before) * 1024.0 / streams as f64
    );
    println!(
        "fan-out: {got}/{expected} stream events received; the last {:.2} s after the first \
         event was recorded (recording took {:.2} s)",
        all_in.as_secs_f64(),
        produced.as_secs_f64()
    );
    println!(
        "CPU during fan-out: {cpu:.2} s over {:.2} s wall ({:.0}% of one core), \
         {:.1} µs per stream event",
        all_in.as_secs_f64(),
        100.0 * cpu / all_in.as_secs_f64(),
        1e6 * cpu / got.max(1) as f64
    );
    println!("RSS after fan-out: {:.1} MiB", rss_mib());
    for c in clients {
        c.abort();
    }
    drop(stop);
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
