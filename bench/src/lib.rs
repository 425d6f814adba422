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

/// Reads a gateway process's JSON log from its stdout on a thread of its
/// own: sends the address it says it listens on, and echoes the lines at
/// the `echo` levels to stderr, prefixed with `who`.
pub fn watch_listening(
    stdout: std::process::ChildStdout,
    who: &'static str,
    echo: &'static [&'static str],
) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_owned());
            } else if v["level"].as_str().is_some_and(|l| echo.contains(&l)) {
                eprintln!("{who}: {line}");
            }
        }
    });
    rx
}
