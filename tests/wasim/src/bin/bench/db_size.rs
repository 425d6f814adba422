//! The database's size per table (rows and bytes) for the bench's
//! report, read with the `psql` or `sqlite3` command-line clients so the
//! bench needs no database driver of its own.

use std::process::Command;

use crate::BenchResult;

/// Tables whose size grows with an account's state and traffic.
fn wanted(table: &str) -> bool {
    table.starts_with("wa_")
        || table.starts_with("webhook_")
        || matches!(table, "messages" | "inbound_messages" | "event_positions")
}

/// (table, rows, bytes) for every table [`wanted`] names; bytes are None
/// where the database cannot say (SQLite without `dbstat`).
pub fn tables(db: &str) -> BenchResult<Vec<(String, u64, Option<u64>)>> {
    if db.starts_with("postgres") {
        let names = psql(
            db,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        )?;
        let mut out = Vec::new();
        for name in names.lines().map(str::trim).filter(|n| wanted(n)) {
            let row = psql(
                db,
                &format!("SELECT count(*), pg_total_relation_size('\"{name}\"') FROM \"{name}\""),
            )?;
            let mut parts = row.trim().split('|');
            let rows = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            let bytes = parts.next().and_then(|b| b.parse().ok());
            out.push((name.to_owned(), rows, bytes));
        }
        Ok(out)
    } else {
        let path = sqlite_path(db);
        let names = sqlite(&path, "SELECT name FROM sqlite_master WHERE type = 'table'")?;
        let mut out = Vec::new();
        for name in names.lines().map(str::trim).filter(|n| wanted(n)) {
            let rows = sqlite(&path, &format!("SELECT count(*) FROM \"{name}\""))?
                .trim()
                .parse()
                .unwrap_or(0);
            let bytes = sqlite(
                &path,
                &format!("SELECT sum(pgsize) FROM dbstat WHERE name = '{name}'"),
            )
            .ok()
            .and_then(|b| b.trim().parse().ok());
            out.push((name.to_owned(), rows, bytes));
        }
        Ok(out)
    }
}

fn sqlite_path(db: &str) -> String {
    let path = db
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    path.split('?').next().unwrap_or(path).to_owned()
}

fn psql(db: &str, sql: &str) -> BenchResult<String> {
    run(Command::new("psql")
        .arg(db.split('?').next().unwrap_or(db))
        .args(["-At", "-c", sql]))
}

fn sqlite(path: &str, sql: &str) -> BenchResult<String> {
    run(Command::new("sqlite3").arg(path).arg(sql))
}

fn run(command: &mut Command) -> BenchResult<String> {
    let out = command.output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prints the tables, per instance.
pub fn print(db: &str, instances: usize) {
    let list = match tables(db) {
        Ok(list) => list,
        Err(e) => {
            println!("  database size: unavailable ({e})");
            return;
        }
    };
    let per = instances.max(1) as f64;
    let mut total = 0u64;
    println!("  database per instance (rows, KiB):");
    for (name, rows, bytes) in &list {
        total += bytes.unwrap_or(0);
        let kib = bytes.map_or("?".to_owned(), |b| {
            format!("{:.1}", b as f64 / 1024.0 / per)
        });
        println!(
            "    {name:<24} {:>9.1} rows {kib:>9} KiB",
            *rows as f64 / per
        );
    }
    println!(
        "    {:<24} {:>24.1} KiB",
        "total",
        total as f64 / 1024.0 / per
    );
}
