//! Webhook delivery benchmark: the gateway (in this process), its database
//! and a local receiver together.
//!
//! Prints sustained deliveries per second (signed, POSTed, 2xx, recorded as
//! succeeded in the database), event-to-POST latency (p50/p99) at a fixed
//! event rate, and the database's own small-transaction commit rate from
//! the same machine, so the first reads as a fraction of the second.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/wagate_bench \
//!   cargo run --release -p wagate-bench --bin bench-webhooks
//! ```
//! Settings (environment): `DATABASE_URL` (default: a SQLite file in a temp
//! folder; a PostgreSQL database is created if missing and emptied first),
//! `BENCH_SECS` (throughput phase, default 60), `BENCH_WEBHOOKS` (per event
//! in the throughput phase, default 4), `BENCH_RATE` (events per second in
//! the latency phase, default 1000), `BENCH_LATENCY_WEBHOOKS` (per event in
//! the latency phase, default 1), `BENCH_LATENCY_SECS` (default 20).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wagate_bench::{env_u64, reset_postgres};

use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;
use wagate::app::App;
use wagate::config::Settings;
use wagate::webhooks::{EventType, Webhooks, registry};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Receiver {
    received: AtomicU64,
    /// Event-to-POST latencies in microseconds, while measuring.
    latencies: Mutex<Option<Vec<u64>>>,
    /// Commit-to-POST latencies in microseconds, while measuring: the part
    /// of the above that the dispatcher owns.
    after_commit: Mutex<Vec<u64>>,
    /// When each latency-phase event `n` was committed, in microseconds
    /// since `base` (0: not yet).
    committed: Vec<AtomicU64>,
    base: Instant,
}

impl Receiver {
    fn new(events: usize) -> Self {
        Self {
            received: AtomicU64::new(0),
            latencies: Mutex::new(None),
            after_commit: Mutex::new(Vec::new()),
            committed: (0..events).map(|_| AtomicU64::new(0)).collect(),
            base: Instant::now(),
        }
    }

    fn since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let secs = env_u64("BENCH_SECS", 60);
    let rate = env_u64("BENCH_RATE", 1000);
    let latency_secs = env_u64("BENCH_LATENCY_SECS", 20);
    let webhooks = env_u64("BENCH_WEBHOOKS", 4);
    let producers = env_u64("BENCH_PRODUCERS", 4);
    let latency_webhooks = env_u64("BENCH_LATENCY_WEBHOOKS", 1);
    let dir = tempfile_dir()?;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}/bench.db", dir.display()),
    };
    if url.starts_with("postgres") {
        reset_postgres(&url).await?;
    }

    let receiver = Arc::new(Receiver::new(
        usize::try_from(rate * latency_secs + rate).unwrap_or(0),
    ));
    let receiver_url = start_receiver(receiver.clone()).await?;

    let figment = Settings::defaults_figment()
        .merge(("listen", "127.0.0.1:0"))
        .merge(("admin_key", "bench"))
        .merge(("log", "warn"))
        .merge(("database.url", url.as_str()))
        .merge(("database.max_connections", 16))
        .merge(("allow_private_targets", true))
        .merge(("webhooks.max_in_flight", 512))
        .merge(("webhooks.max_in_flight_per_webhook", 512))
        .merge(("webhooks.claim_batch", 512));
    let settings = Settings::from_figment(figment)?;
    wagate::telemetry::init(&settings);
    // The webhook path needs no WhatsApp; the scripted engine stays idle.
    let engine = std::sync::Arc::new(wagate::engine::scripted::ScriptedEngine::new());
    let app = App::build(settings, engine).await?;
    let db = app.state().db.clone();
    let wake = app.state().webhooks.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let backend = if url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "bench-webhooks on {backend}: throughput with {webhooks} webhooks per event, \
         {producers} producers"
    );
    let commits = commit_rate(&db, Duration::from_secs(5)).await?;
    println!("database commit rate (8 writers, 1-row transactions): {commits:.0}/s");

    let instance = instance_with_webhooks(&db, "bench", webhooks, &receiver_url).await?;
    let latency_instance =
        instance_with_webhooks(&db, "latency", latency_webhooks, &receiver_url).await?;

    // Throughput: keep a backlog, measure what arrives per second.
    let mut producing = Vec::new();
    for _ in 0..producers {
        producing.push(tokio::spawn(produce_backlog(
            db.clone(),
            wake.clone(),
            instance,
            receiver.clone(),
            Duration::from_secs(secs + 2),
            webhooks,
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm up
    let start_count = receiver.received.load(Ordering::Relaxed);
    let start_ok = succeeded(&db).await?;
    let started = Instant::now();
    for _ in 0..secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            println!(
                "  posted {} succeeded {}",
                receiver.received.load(Ordering::Relaxed),
                succeeded(&db).await?
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let posted = receiver.received.load(Ordering::Relaxed) - start_count;
    let recorded = succeeded(&db).await? - start_ok;
    for p in producing {
        p.await??;
    }
    println!(
        "throughput over {secs} s: {:.0} deliveries/s POSTed, {:.0}/s recorded succeeded \
         ({:.1}% of the commit rate)",
        posted as f64 / elapsed,
        recorded as f64 / elapsed,
        100.0 * (recorded as f64 / elapsed) / commits
    );

    // Drain the backlog before measuring latency.
    drain(&db).await?;

    // Latency: one event per transaction at a fixed rate, as the engine does.
    *receiver.latencies.lock().map_err(|_| "poisoned")? = Some(Vec::new());
    // Paced by the clock, not by timer ticks (whose granularity would cap
    // the rate); each event is its own transaction on its own task, as
    // concurrent sessions of the engine would record them.
    let began = Instant::now();
    let until = began + Duration::from_secs(latency_secs);
    let mut sent = 0u64;
    while Instant::now() < until {
        let due = (began.elapsed().as_secs_f64() * rate as f64) as u64;
        if sent >= due {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let (db, wake, receiver) = (db.clone(), wake.clone(), receiver.clone());
        let id = latency_instance;
        let n = sent;
        tokio::spawn(async move {
            // The engine's way: a single-event write, which SQLite commits
            // together with the others of the same moment.
            let mut outbox = wake.outbox();
            let recording = &mut outbox;
            let recorded = wake
                .transaction(&db, async move |txn| {
                    recording
                        .record(txn, id, EventType::MessageReceived, json!({ "n": n }))
                        .await
                        .map(|_| ())
                })
                .await;
            match recorded {
                Ok(()) => {
                    if let Some(at) = usize::try_from(n)
                        .ok()
                        .and_then(|n| receiver.committed.get(n))
                    {
                        at.store(receiver.since_base(), Ordering::Relaxed);
                    }
                    outbox.committed();
                }
                Err(e) => eprintln!("recording an event: {e}"),
            }
        });
        sent += 1;
    }
    drain(&db).await?;
    let mut lat = receiver
        .latencies
        .lock()
        .map_err(|_| "poisoned")?
        .take()
        .unwrap_or_default();
    let mut dispatch = std::mem::take(&mut *receiver.after_commit.lock().map_err(|_| "poisoned")?);
    println!(
        "latency at {:.0} events/s, {latency_webhooks} webhook(s) per event, for {latency_secs} s \
         ({} deliveries): {}",
        sent as f64 / latency_secs as f64,
        lat.len(),
        percentiles(&mut lat)
    );
    println!("  of which commit-to-POST: {}", percentiles(&mut dispatch));

    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// "p50 …, p99 …, max …" of microsecond samples, in milliseconds.
fn percentiles(samples: &mut [u64]) -> String {
    samples.sort_unstable();
    let pct = |p: f64| {
        samples
            .get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    )
}

/// A fresh instance with `n` webhooks to the receiver; returns its id.
async fn instance_with_webhooks(
    db: &DatabaseConnection,
    name: &str,
    n: u64,
    receiver_url: &str,
) -> Result<Uuid, BoxError> {
    let instance = wagate::instances::store::create(db, Some(name.into())).await?;
    for i in 0..n {
        registry::create(
            db,
            &Default::default(),
            registry::Scope::Instance(instance.id),
            registry::Changes {
                url: Some(format!("{receiver_url}/{name}/{i}")),
                ..Default::default()
            },
            &wagate::outbound::Targets::new(true, &[]),
        )
        .await?;
    }
    Ok(instance.id)
}

fn tempfile_dir() -> Result<std::path::PathBuf, BoxError> {
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn start_receiver(state: Arc<Receiver>) -> Result<String, BoxError> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = *acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr())
        .ok_or("receiver address")?;
    let endpoint = poem::endpoint::make(move |req: Request| {
        let state = state.clone();
        async move {
            let body = req.into_body().into_vec().await.unwrap_or_default();
            let now = Utc::now();
            if let Ok(mut guard) = state.latencies.lock()
                && let Some(lat) = guard.as_mut()
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(ts) = v["timestamp"].as_str()
                && let Ok(at) = DateTime::parse_from_rfc3339(ts)
            {
                let us = (now - at.with_timezone(&Utc))
                    .num_microseconds()
                    .unwrap_or(0);
                lat.push(u64::try_from(us).unwrap_or(0));
                let committed = v["data"]["n"]
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| state.committed.get(n))
                    .map(|at| at.load(Ordering::Relaxed))
                    .unwrap_or(0);
                // 0: the POST overtook the producer's note of its commit.
                let after = state.since_base().saturating_sub(committed.max(1));
                if committed > 0
                    && let Ok(mut dispatch) = state.after_commit.lock()
                {
                    dispatch.push(after);
                }
            }
            state.received.fetch_add(1, Ordering::Relaxed);
            Response::builder().status(StatusCode::NO_CONTENT).body("")
        }
    });
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
    });
    Ok(format!("http://{addr}/hook"))
}

/// Records events in transactions of 200, keeping at most ~20,000 ahead of
/// what the receiver has seen.
async fn produce_backlog(
    db: DatabaseConnection,
    wake: Webhooks,
    instance: Uuid,
    receiver: Arc<Receiver>,
    for_how_long: Duration,
    fan_out: u64,
) -> Result<(), BoxError> {
    static PRODUCED: AtomicU64 = AtomicU64::new(0);
    let until = Instant::now() + for_how_long;
    let mut produced = 0u64;
    while Instant::now() < until {
        let backlog = PRODUCED
            .load(Ordering::Relaxed)
            .saturating_mul(fan_out)
            .saturating_sub(receiver.received.load(Ordering::Relaxed));
        if backlog > 40_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let txn = db.begin().await?;
        let mut outbox = wake.outbox();
        for _ in 0..200 {
            outbox
                .record(
                    &txn,
                    instance,
                    EventType::MessageReceived,
                    json!({"n": produced}),
                )
                .await?;
            produced += 1;
        }
        txn.commit().await?;
        PRODUCED.fetch_add(200, Ordering::Relaxed);
        outbox.committed();
        // SQLite hands its write lock to whoever asks first after a commit,
        // and waiters poll: a producer that never pauses starves the
        // dispatcher. Real event sources pause; so does this one.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn succeeded(db: &DatabaseConnection) -> Result<u64, BoxError> {
    use entity::webhook_deliveries::{Column, Entity, Status};
    Ok(Entity::find()
        .filter(Column::Status.eq(Status::Succeeded))
        .count(db)
        .await?)
}

/// Waits until nothing is pending or being delivered (the due queue is
/// empty).
async fn drain(db: &DatabaseConnection) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let open = entity::webhook_due::Entity::find().count(db).await?;
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{open} deliveries still open").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database's rate of tiny committed transactions from 8 writers.
async fn commit_rate(db: &DatabaseConnection, for_how_long: Duration) -> Result<f64, BoxError> {
    db.execute_unprepared("CREATE TABLE IF NOT EXISTS bench_probe (id INTEGER, at TEXT)")
        .await?;
    let count = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + for_how_long;
    let mut writers = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        let count = count.clone();
        writers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let txn = db.begin().await?;
                txn.execute_unprepared(&format!(
                    "INSERT INTO bench_probe (id, at) VALUES ({w}, 'x')"
                ))
                .await?;
                txn.commit().await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), sea_orm::DbErr>(())
        }));
    }
    for w in writers {
        w.await??;
    }
    db.execute_unprepared("DROP TABLE bench_probe").await?;
    Ok(count.load(Ordering::Relaxed) as f64 / for_how_long.as_secs_f64())
}
