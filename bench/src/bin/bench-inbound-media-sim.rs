//! Inbound media memory benchmark on the real engine: a gateway process
//! (the unmodified whatsapp-rust client, built with the `sim` feature) is
//! paired with the simulator, a simulated contact sends 20 videos of 50 MiB
//! at one moment (each encrypted and put on the simulator's media host
//! beforehand), and the gateway downloads, decrypts, verifies and stores
//! all of them. Prints the gateway process's resident memory at idle and
//! its peak above idle (sampled every 20 ms), and the throughput; then
//! fetches every file back through the media route and checks its hash.
//!
//! ```text
//! cargo build --release -p wagate -p wagate-bench --features wagate/sim \
//!   --bin wagate --bin bench-inbound-media-sim
//! target/release/bench-inbound-media-sim
//! ```
//! Settings (environment): `BENCH_MEDIA` (videos, default 20),
//! `BENCH_MEDIA_MIB` (size of each, default 50), `BENCH_GATEWAY_BIN`
//! (default `target/release/wagate`), `DATABASE_URL` (default: a SQLite
//! file in a temp folder). `media.concurrency` is set to the number of
//! videos so that all of them stream at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use sha2::{Digest, Sha256};
use wagate_bench::{env_u64, rss_kib};
use wasim::Sim;
use wasim::media::{Kind, MediaOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PHONE: &str = "6281500000011";
const FRIEND: &str = "6281500000012";
const MIB: u64 = 1024 * 1024;

/// A gateway process and its address.
struct Gateway {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(sim: &Sim, url: &str, media_dir: &str, concurrency: u64) -> Result<Self, BoxError> {
        let bin =
            std::env::var("BENCH_GATEWAY_BIN").unwrap_or_else(|_| "target/release/wagate".into());
        let addr: std::net::SocketAddr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        // Only the settings named here: config refuses unknown WAGATE_* names.
        let child = std::process::Command::new(&bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", std::env::temp_dir())
            .env("DATABASE_URL", url)
            .env("WAGATE_LISTEN", addr.to_string())
            .env("WAGATE_ADMIN_KEY", "bench")
            .env("WAGATE_LOG", "warn")
            .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
            .env("WAGATE_WHATSAPP__WS_URL", sim.ws_url())
            // The simulator's media host is on loopback.
            .env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
            .env("WAGATE_MEDIA__DIR", media_dir)
            .env("WAGATE_MEDIA__CONCURRENCY", concurrency.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("{bin}: {e} (build it with --features sim)"))?;
        Ok(Self {
            child,
            addr,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn up(&self) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.http.get(self.url("/healthz")).send().await.is_err() {
            if Instant::now() > deadline {
                return Err("the gateway did not come up".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn post(&self, path: &str) -> Result<serde_json::Value, BoxError> {
        Ok(self
            .http
            .post(self.url(path))
            .bearer_auth("bench")
            .json(&serde_json::json!({}))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Creates an instance and pairs it with the simulator as `PHONE`.
    async fn paired(&self, sim: &Sim) -> Result<String, BoxError> {
        let created = self.post("/v1/instances").await?;
        let id = created["id"].as_str().ok_or("no instance id")?.to_owned();
        let login = self.post(&format!("/v1/instances/{id}/login")).await?;
        let qr = login["qr"]["code"].as_str().ok_or("no QR code")?;
        sim.scan_qr(qr, PHONE)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status: serde_json::Value = self
                .http
                .get(self.url(&format!("/v1/instances/{id}")))
                .bearer_auth("bench")
                .send()
                .await?
                .json()
                .await?;
            // Messages reach a companion once its prekeys are uploaded.
            if status["status"] == "online" && sim.has_prekeys(PHONE, 1) {
                return Ok(id);
            }
            if Instant::now() > deadline {
                return Err("the instance did not come online".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The stored file of `message_id`, hashed as it streams in.
    async fn stored_sha256(&self, id: &str, message_id: &str) -> Result<String, BoxError> {
        let mut response = self
            .http
            .get(self.url(&format!("/v1/instances/{id}/messages/{message_id}/media")))
            .bearer_auth("bench")
            .send()
            .await?
            .error_for_status()?;
        let mut hash = Sha256::new();
        while let Some(chunk) = response.chunk().await? {
            hash.update(&chunk);
        }
        Ok(hex(&hash.finalize()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `size` bytes that differ per video and position.
fn content(video: u64, size: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8 ^ video as u8)
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let videos = env_u64("BENCH_MEDIA", 20);
    let size = env_u64("BENCH_MEDIA_MIB", 50) * MIB;
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let media_dir = dir.join("media").display().to_string();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.display()));

    wasim::install_crypto_provider();
    let sim = Sim::start().await?;
    sim.register_number(FRIEND)?;
    let gateway = Gateway::start(&sim, &url, &media_dir, videos)?;
    gateway.up().await?;
    let id = gateway.paired(&sim).await?;
    let db = Database::connect(&url).await?;

    // Every file is encrypted and on the media host before the idle
    // reading: only the gateway's downloads are measured.
    let mut uploaded = Vec::new();
    for video in 0..videos {
        let plaintext = content(video, size);
        uploaded.push(sim.upload_media(
            Kind::Video,
            &plaintext,
            MediaOptions {
                mime_type: Some("video/mp4".into()),
                ..Default::default()
            },
        )?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = gateway.child.id();
    let idle = rss_kib(pid);

    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let mut sent = Vec::new();
    for media in &uploaded {
        sent.push(sim.send_uploaded(FRIEND, PHONE, media).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(900);
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

    let mut verified = 0;
    for media in &sent {
        if gateway.stored_sha256(&id, &media.id).await.ok() == Some(media.sha256.clone()) {
            verified += 1;
        }
    }
    let total = (videos * size) as f64;
    println!(
        "bench-inbound-media-sim: {videos} inbound videos of {} MiB at once (real engine against the simulator), \
         {ready} ready, {failed} failed, {verified} served back with the sender's SHA-256, in {:.1} s: {:.0} MB/s",
        size / MIB,
        elapsed.as_secs_f64(),
        total / 1e6 / elapsed.as_secs_f64()
    );
    println!(
        "gateway resident memory: idle {} MiB, peak {} MiB, peak above idle {} MiB (target: under 64)",
        idle / 1024,
        peak / 1024,
        peak.saturating_sub(idle) / 1024
    );
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
