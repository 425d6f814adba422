//! Inbound media memory benchmark: 20 contacts' 50 MiB videos download at
//! once; prints the gateway's resident memory at idle and at the peak, and
//! the throughput. The gateway runs in this process with the scripted
//! engine, whose downloads write deterministic bytes into the gateway's
//! real pipeline (hashing sink, staging file in the media store, hash
//! check, atomic rename, row and event); WhatsApp's decryption and HTTP are
//! not in it (the end-to-end tests cover those against wasim).
//!
//! ```text
//! cargo run --release -p wagate-bench --bin bench-inbound-media
//! ```
//! Settings (environment): `BENCH_MEDIA` (videos, default 20),
//! `BENCH_MEDIA_MIB` (size of each, default 50), `DATABASE_URL` (default: a
//! SQLite file in a temp folder). `media.concurrency` is set to the number
//! of videos so that all of them stream at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wagate_bench::{env_u64, rss_kib};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use wagate::app::App;
use wagate::config::Settings;
use wagate::engine::scripted::{ScriptedEngine, received_media};
use wagate::engine::{Content, EngineEvent, Inbound, Party, ReceivedMediaKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SENDER: &str = "6281500000001";
const FRIEND: &str = "6281500000002";
const MIB: u64 = 1024 * 1024;

fn settings(url: &str, media_dir: &str, concurrency: u64) -> Result<Settings, BoxError> {
    let figment = Settings::defaults_figment()
        .merge(("listen", "127.0.0.1:0"))
        .merge(("admin_key", "bench"))
        .merge(("log", "warn"))
        .merge(("database.url", url))
        .merge(("api.rate_limit_per_sec", 0.0))
        .merge(("messaging.pacing.min_interval_ms", 0))
        .merge(("messaging.pacing.jitter_ms", 0))
        .merge(("media.dir", media_dir))
        .merge(("media.concurrency", concurrency));
    Ok(Settings::from_figment(figment)?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let videos = env_u64("BENCH_MEDIA", 20);
    let size = env_u64("BENCH_MEDIA_MIB", 50) * MIB;
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let media_dir = dir.join("media").display().to_string();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display()));

    let migrated = App::build(
        settings(&url, &media_dir, videos)?,
        Arc::new(ScriptedEngine::new()),
    )
    .await?;
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

    let settings = settings(&url, &media_dir, videos)?;
    wagate::telemetry::init(&settings);
    let engine = ScriptedEngine::new();
    engine.resume_everyone();
    let app = App::build(settings, Arc::new(engine.clone())).await?;
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.sessions.session(instance.id).is_none() {
        if Instant::now() > deadline {
            return Err("the instance did not come online".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The messages (and their declared hashes) are made before the idle
    // reading: only the downloads are measured.
    let messages: Vec<Inbound> = (0..videos)
        .map(|i| Inbound {
            from_me: false,
            message_id: format!("3EB0BENCH{i:04}"),
            from: Party {
                jid: format!("{FRIEND}@s.whatsapp.net"),
                phone_number: Some(FRIEND.into()),
                lid: None,
            },
            chat: format!("{FRIEND}@s.whatsapp.net"),
            chat_subject: None,
            timestamp: chrono::Utc::now(),
            content: Content::Media(received_media(
                ReceivedMediaKind::Video,
                &format!("/v/bench-{i}"),
                size,
                "video/mp4",
            )),
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(std::process::id());

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(std::process::id()), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    engine
        .emit(
            instance.id,
            EngineEvent::Messages {
                messages,
                committed: wagate::engine::Ack::new().0,
            },
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (ready, failed) = loop {
        let count = |status: &'static str| {
            entity::inbound_media::Entity::find()
                .filter(entity::inbound_media::Column::Status.eq(status))
                .count(&db)
        };
        let (ready, failed) = (count("ready").await?, count("failed").await?);
        if ready + failed >= videos || Instant::now() > deadline {
            break (ready, failed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    let peak = peak.load(Ordering::Relaxed);
    let total = (videos * size) as f64;
    println!(
        "bench-inbound-media: {videos} inbound videos of {} MiB at once (scripted engine), {ready} ready, {failed} failed, in {:.1} s: {:.0} MB/s",
        size / MIB,
        elapsed.as_secs_f64(),
        total / 1e6 / elapsed.as_secs_f64()
    );
    println!(
        "resident memory: idle {} MiB, peak {} MiB, peak above idle {} MiB (target: under 64)",
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024
    );
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
