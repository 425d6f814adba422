//! Benchmarks of the gateway, kept out of its own package so that no bench
//! ships as a product binary. Each bench is a binary under `src/bin/` that
//! prints its figures.

/// A whole-number setting from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process's resident set, in KiB (`VmRSS` of /proc/<pid>/status); 0 if
/// it cannot be read.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Empties a PostgreSQL bench database (creating it if needed), so that
/// every run starts alike.
pub async fn reset_postgres(url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use sea_orm::{ConnectionTrait, Database};
    let (base, name) = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit_once('/'))
        .ok_or("DATABASE_URL has no database name")?;
    let admin = Database::connect(format!("{base}/postgres")).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    Ok(())
}
