//! Failover benchmark: three gateway nodes (separate processes, the
//! scripted engine) on one PostgreSQL database share N paired instances;
//! one node is SIGKILLed and the others take its instances over.
//!
//! Prints how long the three nodes took to bring every instance online at
//! first, what the nodes cost the database while idle (statements per
//! second per node, lease rows renewed per second), and the failover time:
//! from the SIGKILL until every instance the killed node held is connected
//! again on another node (target: `lease_secs` + 30 s).
//!
//! ```text
//! cargo build --release --bin wagate-scripted
//! WAGATE_BIN=target/release/wagate-scripted \
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/wagate_bench_failover \
//!   cargo run --release -p wagate-bench --bin bench-failover
//! ```
//! Settings (environment): `WAGATE_BIN` (required), `DATABASE_URL`
//! (required, PostgreSQL; the database is dropped and created first),
//! `BENCH_INSTANCES` (default 300), `BENCH_HEARTBEAT_SECS` (default 5) and
//! `BENCH_LEASE_SECS` (default 20), the cluster's own defaults,
//! `BENCH_IDLE_SECS` (the window the idle cost is measured over, default
//! 30). The nodes run with `whatsapp.resume_concurrency` at its default.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use entity::instances::{ActiveModel, Status};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    Statement,
};
use uuid::Uuid;
use wagate_bench::{env_u64, reset_postgres, watch_listening};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";

/// One gateway node; killed when dropped.
struct Node {
    id: Uuid,
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    bin: String,
    db_url: String,
    heartbeat: u64,
    lease: u64,
}

impl Cluster {
    /// Starts a node and waits for the log line naming its address.
    fn start(&self) -> Result<Node, BoxError> {
        let id = Uuid::new_v4();
        let mut child = Command::new(&self.bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.db_url)
            .env("WAGATE_LISTEN", "127.0.0.1:0")
            .env("WAGATE_ADMIN_KEY", ADMIN_KEY)
            .env("WAGATE_LOG", "warn,wagate::app=info")
            .env("WAGATE_LOG_FORMAT", "json")
            .env("WAGATE_CLUSTER__NODE_ID", id.to_string())
            .env("WAGATE_CLUSTER__HEARTBEAT_SECS", self.heartbeat.to_string())
            .env("WAGATE_CLUSTER__LEASE_SECS", self.lease.to_string())
            .env(
                "WAGATE_CLUSTER_SECRET",
                "bench-cluster-secret-0123456789abcdef",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("node stdout")?;
        let rx = watch_listening(stdout, "node", &["ERROR"]);
        let mut node = Node {
            id,
            child,
            base: String::new(),
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "a node never said where it listens")?;
        node.base = format!("http://{addr}");
        Ok(node)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let bin = std::env::var("WAGATE_BIN").map_err(|_| "set WAGATE_BIN to wagate-scripted")?;
    let db_url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL (PostgreSQL)")?;
    if !db_url.starts_with("postgres") {
        return Err("a cluster needs PostgreSQL".into());
    }
    let n = env_u64("BENCH_INSTANCES", 300) as usize;
    let cluster = Cluster {
        bin,
        db_url: db_url.clone(),
        heartbeat: env_u64("BENCH_HEARTBEAT_SECS", 5),
        lease: env_u64("BENCH_LEASE_SECS", 20),
    };
    let idle = Duration::from_secs(env_u64("BENCH_IDLE_SECS", 30));
    reset_postgres(&db_url).await?;

    // The first node migrates the database; the others join once it has.
    let mut nodes = vec![cluster.start()?];
    nodes.push(cluster.start()?);
    nodes.push(cluster.start()?);
    let db = Database::connect(&db_url).await?;
    wait_for("three live nodes", Duration::from_secs(60), || async {
        Ok(scalar(
            &db,
            "SELECT count(*) FROM cluster_nodes WHERE stopped_at IS NULL \
             AND last_heartbeat > now() - interval '10 seconds'",
        )
        .await?
            == 3)
    })
    .await?;

    let started = Instant::now();
    for i in 0..n {
        let inst = wagate::instances::store::create(&db, None).await?;
        ActiveModel {
            id: Set(inst.id),
            status: Set(Status::Disconnected),
            phone_number: Set(Some(format!("62815{i:08}"))),
            ..Default::default()
        }
        .update(&db)
        .await?;
    }
    wait_for(
        "every instance online under a lease",
        Duration::from_secs(300),
        || async {
            Ok(live_leases(&db).await? == n as i64
                && scalar(
                    &db,
                    "SELECT count(*) FROM instances WHERE status = 'online'",
                )
                .await?
                    == n as i64)
        },
    )
    .await?;
    println!(
        "{n} instances online on 3 nodes in {:.1} s (heartbeat {} s, lease {} s)",
        started.elapsed().as_secs_f64(),
        cluster.heartbeat,
        cluster.lease
    );
    for node in &nodes {
        let held = scalar(
            &db,
            &format!(
                "SELECT count(*) FROM instance_leases WHERE owner_node = '{}' \
                 AND lease_until > now()",
                node.id
            ),
        )
        .await?;
        println!("  node {} holds {held}", &node.id.to_string()[..8]);
    }

    // Idle cost: every statement the three nodes sent (each is its own
    // transaction), and the lease rows their renewals touched.
    let (xacts, renewed) = counters(&db).await?;
    let window = Instant::now();
    tokio::time::sleep(idle).await;
    let (xacts_after, renewed_after) = counters(&db).await?;
    let secs = window.elapsed().as_secs_f64();
    println!(
        "idle over {secs:.0} s: {:.1} statements/s per node (all periodic work), \
         {:.1} lease rows renewed/s in all, {:.2} renewal statements/s per node",
        (xacts_after - xacts) as f64 / secs / 3.0,
        (renewed_after - renewed) as f64 / secs,
        1.0 / cluster.heartbeat as f64
    );

    // SIGKILL one node: its instances come back once their leases expire.
    let victim = nodes.remove(0);
    let held = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM instance_leases WHERE owner_node = '{}'",
            victim.id
        ),
    )
    .await?;
    let before: String = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT now()::text AS t",
        ))
        .await?
        .ok_or("now")?
        .try_get("", "t")?;
    let victim_id = victim.id;
    let killed = Instant::now();
    drop(victim);
    let back = format!(
        "SELECT count(*) FROM instances i JOIN instance_leases l ON l.instance_id = i.id \
         WHERE i.status = 'online' AND i.last_connected_at > '{before}'::timestamptz \
           AND l.owner_node <> '{victim_id}' AND l.lease_until > now()"
    );
    wait_for(
        "the killed node's instances online elsewhere",
        Duration::from_secs(cluster.lease + 120),
        || async { Ok(scalar(&db, &back).await? >= held) },
    )
    .await?;
    println!(
        "failover: {held} instances of the killed node online on the other two {:.1} s \
         after SIGKILL (target: lease {} s + 30 s)",
        killed.elapsed().as_secs_f64(),
        cluster.lease
    );
    drop(nodes);
    db.close().await?;
    Ok(())
}

/// Transactions committed in this database, and lease rows updated.
async fn counters(db: &DatabaseConnection) -> Result<(i64, i64), BoxError> {
    // The statistics are flushed by each backend about once a second.
    let xacts = scalar(
        db,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .await?;
    let renewed = scalar(
        db,
        "SELECT coalesce(n_tup_upd, 0) FROM pg_stat_user_tables WHERE relname = 'instance_leases'",
    )
    .await?;
    Ok((xacts, renewed))
}

async fn live_leases(db: &DatabaseConnection) -> Result<i64, BoxError> {
    scalar(
        db,
        "SELECT count(*) FROM instance_leases WHERE owner_node IS NOT NULL AND lease_until > now()",
    )
    .await
}

/// The first column of the first row, as a number.
async fn scalar(db: &DatabaseConnection, sql: &str) -> Result<i64, BoxError> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT ({sql})::bigint AS v"),
        ))
        .await?
        .ok_or("no row")?;
    Ok(row.try_get("", "v")?)
}

/// Polls `check` every 100 ms until it holds, or fails past `limit`.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<(), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BoxError>>,
{
    let deadline = Instant::now() + limit;
    while !check().await? {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
