//! Webhook delivery through the API, as an integration drives it: a gateway
//! binary in its own process, ONE webhook pointing at a fast receiver in
//! this process, and concurrent HTTP clients recording events with
//! `POST /v1/instances/{id}/webhooks/{webhook_id}/test`.
//!
//! Prints events accepted per second and deliveries per second while the
//! load runs, how long the backlog then takes to drain, and deliveries per
//! second end to end (every accepted event delivered, over load + drain).
//! Only HTTP crosses between the bench and the gateway, so the same bench
//! measures any build, old or new.
//!
//! ```text
//! cargo build --release --bin wagate-scripted
//! WAGATE_BIN=target/release/wagate-scripted \
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/wagate_bench \
//!   cargo run --release -p wagate-bench --bin bench-webhooks-api
//! ```
//! Settings (environment): `WAGATE_BIN` (required: the gateway binary;
//! `wagate-scripted` needs no WhatsApp), `DATABASE_URL` (default: a SQLite
//! file in a temp folder; a PostgreSQL database is dropped and created
//! first), `BENCH_SECS` (load, default 20), `BENCH_CLIENTS` (default 32).
//! The gateway runs with its default settings, except that the API rate
//! limit is off and private webhook targets are allowed.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wagate_bench::{env_u64, reset_postgres, watch_listening};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";

/// The gateway process; killed when dropped.
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

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bin = std::env::var("WAGATE_BIN").map_err(|_| "set WAGATE_BIN to a gateway binary")?;
    let secs = env_u64("BENCH_SECS", 20);
    let clients = env_u64("BENCH_CLIENTS", 32);
    let dir = std::env::temp_dir().join(format!("wagate-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}/bench.db", dir.display()),
    };
    let backend = if url.starts_with("postgres") {
        reset_postgres(&url).await?;
        "PostgreSQL"
    } else {
        "SQLite"
    };

    let received = Arc::new(AtomicU64::new(0));
    let receiver_url = start_receiver(received.clone()).await?;
    let gateway = start_gateway(&bin, &url)?;
    wagate::outbound::install_crypto_provider();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(clients).unwrap_or(32))
        .build()?;

    let instance = post(&http, &gateway, "/v1/instances", json!({})).await?;
    let instance = instance["id"].as_str().ok_or("instance id")?.to_owned();
    let hook = post(
        &http,
        &gateway,
        &format!("/v1/instances/{instance}/webhooks"),
        json!({ "url": receiver_url }),
    )
    .await?;
    let hook = hook["id"].as_str().ok_or("webhook id")?.to_owned();
    let test_url = format!(
        "{}/v1/instances/{instance}/webhooks/{hook}/test",
        gateway.base
    );
    println!(
        "bench-webhooks-api on {backend}: {clients} clients POST …/webhooks/{{id}}/test for \
         {secs} s, one webhook, receiver answers 204"
    );

    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut running = Vec::new();
    for _ in 0..clients {
        let (http, url, accepted, refused) = (
            http.clone(),
            test_url.clone(),
            accepted.clone(),
            refused.clone(),
        );
        running.push(tokio::spawn(async move {
            while Instant::now() < until {
                let sent = http.post(&url).bearer_auth(ADMIN_KEY).send().await;
                match sent {
                    Ok(r) if r.status().as_u16() == 202 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for r in running {
        r.await?;
    }
    let load = started.elapsed().as_secs_f64();
    let delivered_in_load = received.load(Ordering::Relaxed);
    let total = accepted.load(Ordering::Relaxed);
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(600);
    while received.load(Ordering::Relaxed) < total {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {total} delivered after 600 s of draining",
                received.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = drain_started.elapsed().as_secs_f64();
    let accepted_rate = total as f64 / load;
    let delivered_rate = delivered_in_load as f64 / load;
    println!(
        "accepted {accepted_rate:.0} events/s ({total} in {load:.1} s, {} refused)",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "delivered during the load {delivered_rate:.0}/s ({:.0}% of accepted)",
        100.0 * delivered_rate / accepted_rate.max(f64::MIN_POSITIVE)
    );
    println!("drain time {drain:.2} s");
    println!(
        "end to end {:.0} deliveries/s",
        total as f64 / (load + drain)
    );
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn post(
    http: &reqwest::Client,
    gateway: &Gateway,
    path: &str,
    body: Value,
) -> Result<Value, BoxError> {
    let resp = http
        .post(format!("{}{path}", gateway.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Starts the gateway and waits for the log line naming its address.
fn start_gateway(bin: &str, db_url: &str) -> Result<Gateway, BoxError> {
    let mut child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("WAGATE_LISTEN", "127.0.0.1:0")
        .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
        .env("WAGATE_LOG", "warn,wagate::app=info")
        .env("WAGATE_LOG_FORMAT", "json")
        .env("WAGATE_API__RATE_LIMIT_PER_SEC", "0")
        .env("WAGATE_ALLOW_PRIVATE_TARGETS", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("gateway stdout")?;
    let rx = watch_listening(stdout, "gateway", &["WARN", "ERROR"]);
    let mut gateway = Gateway {
        child,
        base: String::new(),
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .map_err(|_| "the gateway never said where it listens")?;
    gateway.base = format!("http://{addr}");
    Ok(gateway)
}

/// A receiver that answers every POST with 204 at once and counts them.
async fn start_receiver(received: Arc<AtomicU64>) -> Result<String, BoxError> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = *acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr())
        .ok_or("receiver address")?;
    let endpoint = poem::endpoint::make(move |req: Request| {
        let received = received.clone();
        async move {
            let _ = req.into_body().into_vec().await;
            received.fetch_add(1, Ordering::Relaxed);
            Response::builder().status(StatusCode::NO_CONTENT).body("")
        }
    });
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(endpoint).await;
    });
    Ok(format!("http://{addr}/hook"))
}
