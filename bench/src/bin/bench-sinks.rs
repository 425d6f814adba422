//! Destination kinds side by side: events per second delivered (published,
//! confirmed or answered 2xx, and recorded as succeeded) to an HTTP
//! webhook, a NATS JetStream sink and a RabbitMQ sink, one after the other
//! in one run, by the gateway in this process on the same database.
//!
//! ```text
//! cargo run --release -p wagate-bench --bin bench-sinks
//! ```
//! Settings (environment): `DATABASE_URL` (default: a SQLite file in a temp
//! folder), `BENCH_EVENTS` (per kind, default 20000), `BENCH_PRODUCERS`
//! (default 4), `BENCH_AMQP` (default `amqp://127.0.0.1:5672`, guest/guest).
//! NATS is a private `nats-server -js` this bench starts on a free port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Response, Server};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;
use wagate::app::App;
use wagate::config::Settings;
use wagate::webhooks::registry::{self, Changes, SinkSpec};
use wagate::webhooks::sink::{AmqpTarget, Credentials, Kind, NatsTarget, Target};
use wagate::webhooks::{EventType, Webhooks};
use wagate_bench::env_u64;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Nats(Child);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_nats(store: &std::path::Path) -> Result<(Nats, String), BoxError> {
    let port = free_port()?;
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let nats = Nats(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("nats-server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((nats, format!("nats://127.0.0.1:{port}")))
}

async fn start_receiver() -> Result<String, BoxError> {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or("receiver address")?;
    let app = poem::endpoint::make(|_| async {
        Response::builder()
            .status(poem::http::StatusCode::NO_CONTENT)
            .finish()
    });
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    Ok(format!("http://{addr}/hook"))
}

/// A queue bound to the sink's routing keys, so mandatory publishes route.
async fn amqp_queue(url: &str, instance: Uuid) -> Result<lapin::Connection, BoxError> {
    let conn = lapin::Connection::connect(
        &url.replacen("amqp://", "amqp://guest:guest@", 1),
        lapin::ConnectionProperties::default(),
    )
    .await?;
    let channel = conn.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            "amq.topic".into(),
            format!("wagate.{instance}.#").into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(conn)
}

async fn succeeded(db: &DatabaseConnection, webhook: Uuid) -> Result<u64, BoxError> {
    use entity::webhook_deliveries::{Column, Entity, Status};
    Ok(Entity::find()
        .filter(Column::WebhookId.eq(webhook))
        .filter(Column::Status.eq(Status::Succeeded))
        .count(db)
        .await?)
}

/// Records `events` one per transaction from `producers` tasks, then waits
/// until every delivery to `webhook` succeeded. Returns events per second.
async fn run(
    db: &DatabaseConnection,
    hooks: &Webhooks,
    instance: Uuid,
    webhook: Uuid,
    events: u64,
    producers: u64,
) -> Result<f64, BoxError> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (db, hooks) = (db.clone(), hooks.clone());
        let share = events / producers + u64::from(p < events % producers);
        tasks.push(tokio::spawn(async move {
            for n in 0..share {
                let mut outbox = hooks.outbox();
                let txn = db.begin().await?;
                outbox
                    .record(
                        &txn,
                        instance,
                        EventType::MessageReceived,
                        json!({ "n": n }),
                    )
                    .await?;
                txn.commit().await?;
                outbox.committed();
            }
            Ok::<_, BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while succeeded(db, webhook).await? < events {
        if Instant::now() > deadline {
            return Err("deliveries did not finish within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let events = env_u64("BENCH_EVENTS", 20_000);
    let producers = env_u64("BENCH_PRODUCERS", 4).max(1);
    let amqp_url = std::env::var("BENCH_AMQP").unwrap_or_else(|_| "amqp://127.0.0.1:5672".into());
    let dir = std::env::temp_dir().join(format!("wagate-bench-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.display()));
    let (_nats, nats_url) = start_nats(&dir.join("nats")).await?;
    let receiver = start_receiver().await?;

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
    let engine = std::sync::Arc::new(wagate::engine::scripted::ScriptedEngine::new());
    let app = App::build(settings, engine).await?;
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
    println!(
        "bench-sinks on {backend}: {events} events per kind, {producers} producers, \
         one destination each"
    );

    for kind in [Kind::Webhook, Kind::Nats, Kind::Amqp] {
        let instance = wagate::instances::store::create(&db, Some(kind.as_str().into())).await?;
        let mut changes = Changes {
            kind: Some(kind),
            ..Default::default()
        };
        let mut _queue = None;
        match kind {
            Kind::Webhook => changes.url = Some(receiver.clone()),
            Kind::Nats => {
                changes.sink = Some(SinkSpec {
                    url: nats_url.clone(),
                    target: Target::Nats(NatsTarget {
                        subject: "wagate.{instance_id}.{type}".into(),
                        stream: "BENCH".into(),
                        create_stream: true,
                        tls_required: false,
                    }),
                    credentials: Credentials::default(),
                });
            }
            Kind::Amqp => {
                _queue = Some(amqp_queue(&amqp_url, instance.id).await?);
                changes.sink = Some(SinkSpec {
                    url: amqp_url.clone(),
                    target: Target::Amqp(AmqpTarget {
                        exchange: "amq.topic".into(),
                        routing_key: "wagate.{instance_id}.{type}".into(),
                    }),
                    credentials: Credentials {
                        username: Some("guest".into()),
                        password: Some("guest".into()),
                        token: None,
                    },
                });
            }
        }
        let (webhook, _) = registry::create(
            &db,
            &Default::default(),
            registry::Scope::Instance(instance.id),
            changes,
            &wagate::outbound::Targets::new(true, &[]),
        )
        .await?;
        let rate = run(&db, &hooks, instance.id, webhook.id, events, producers).await?;
        println!("  {:<8} {rate:>8.0} events/s delivered", kind.as_str());
    }

    let _ = stop.send(());
    server.await??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
