//! `bench realistic`: N instances paired, each seeded with contacts (a
//! Signal session each), groups with sender keys and app-state mutations,
//! then a steady mixed workload (inbound 1:1 and group messages, sends at
//! the paced rate with their receipts) for a set time. Reports RSS every
//! 30 s with its trend, the database per instance, p99 event-to-webhook
//! latency under the workload, and the reconnect after SIGKILL with all
//! that state, each against issue 20's targets.
//!
//!   bench realistic [--instances 20] [--contacts 300] [--groups 20]
//!     [--group-min 10] [--group-max 200] [--mutations 2000] [--backlog 0]
//!     [--minutes 10] [--inbound-per-min 6] [--group-per-min 2]
//!     [--sends-per-min 2] [--bound 8] [--seed-concurrency 4]
//!
//! Rates are per instance. Environment as for the plain bench.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasim::{Seed, Seeded, Sim};

use crate::{
    BenchResult, api, db_size, free_port, pair_all, receiver, rss_kib, start_gateway,
    wait_gateway_online, wait_online,
};

struct Options {
    instances: usize,
    seed: Seed,
    minutes: f64,
    inbound_per_min: f64,
    group_per_min: f64,
    sends_per_min: f64,
    bound: usize,
    seed_concurrency: usize,
}

impl Options {
    fn parse(args: &[String]) -> BenchResult<Self> {
        let mut o = Self {
            instances: 20,
            seed: Seed::default(),
            minutes: 10.0,
            inbound_per_min: 6.0,
            group_per_min: 2.0,
            sends_per_min: 2.0,
            bound: 8,
            seed_concurrency: 4,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--instances" => o.instances = value.parse()?,
                "--contacts" => o.seed.contacts = value.parse()?,
                "--groups" => o.seed.groups = value.parse()?,
                "--group-min" => o.seed.group_sizes.0 = value.parse()?,
                "--group-max" => o.seed.group_sizes.1 = value.parse()?,
                "--mutations" => o.seed.app_state_mutations = value.parse()?,
                "--backlog" => o.seed.backlog = value.parse()?,
                "--minutes" => o.minutes = value.parse()?,
                "--inbound-per-min" => o.inbound_per_min = value.parse()?,
                "--group-per-min" => o.group_per_min = value.parse()?,
                "--sends-per-min" => o.sends_per_min = value.parse()?,
                "--bound" => o.bound = value.parse()?,
                "--seed-concurrency" => o.seed_concurrency = value.parse::<usize>()?.max(1),
                other => return Err(format!("unknown flag {other}").into()),
            }
        }
        Ok(o)
    }
}

/// An inbound message the workload sent: when, and its id once known.
type Sent = Arc<Mutex<Vec<(Instant, String)>>>;

fn pick(len: usize) -> usize {
    (rand::random::<u64>() % len.max(1) as u64) as usize
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub async fn run(args: Vec<String>) -> BenchResult<()> {
    let o = Options::parse(&args)?;
    let n = o.instances;
    let bin = std::env::var("WASIM_GATEWAY_BIN").unwrap_or_else(|_| "target/release/wagate".into());
    let dir = tempfile::tempdir()?;
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
    let s = &o.seed;
    println!(
        "realistic: {n} instances; per instance {} contacts, {} groups of {}-{}, {} app-state \
         mutations, {} backlog messages; workload {} min at {}/{}/{} inbound/group/sends per \
         instance-minute; resume bound {}",
        s.contacts,
        s.groups,
        s.group_sizes.0,
        s.group_sizes.1,
        s.app_state_mutations,
        s.backlog,
        o.minutes,
        o.inbound_per_min,
        o.group_per_min,
        o.sends_per_min,
        o.bound
    );

    let sim = Arc::new(Sim::start().await?);
    let hooks = receiver::Receiver::start().await?;
    let port = free_port()?;
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port, o.bound, true).await?;
    let http = reqwest::Client::new();
    let base = gateway.base.clone();
    let idle = rss_kib(gateway.child.id())?;
    api(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks"),
        json!({ "url": hooks.url() }),
    )
    .await?;
    let (phones, ids) = pair_all(&http, &base, &sim, n).await?;
    for phone in &phones {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !sim.has_prekeys(phone, 1) {
            if Instant::now() > deadline {
                return Err(format!("{phone} uploaded no prekeys").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let empty = rss_kib(gateway.child.id())?;
    println!(
        "empty accounts: RSS {:.1} MiB idle, {:.1} MiB connected, {:.2} MiB per instance",
        mib(idle),
        mib(empty),
        mib(empty.saturating_sub(idle)) / n as f64
    );

    let seeded = seed_all(&sim, &phones, &o).await?;
    let after_seed = rss_kib(gateway.child.id())?;
    println!(
        "seeded accounts: RSS {:.1} MiB, {:.2} MiB per instance",
        mib(after_seed),
        mib(after_seed.saturating_sub(idle)) / n as f64
    );
    db_size::print(&db, n);

    let sent = Sent::default();
    let samples = workload(&http, &base, &sim, &phones, &seeded, &o, &sent, &gateway).await?;
    let last = samples.last().map_or(after_seed, |s| s.1);
    let per_instance = mib(last.saturating_sub(idle)) / n as f64;
    let slope = trend(&samples[samples.len() / 2..]);
    println!(
        "after the workload: RSS {:.1} MiB, {per_instance:.2} MiB per instance; last half's \
         trend {slope:+.1} MiB per hour (whole run {:+.1})",
        mib(last),
        trend(&samples)
    );
    let (p50, p99, missing) = latency(&hooks, &sent).await;
    println!(
        "event-to-webhook (inbound message.received): p50 {p50:.0} ms, p99 {p99:.0} ms over {} \
         messages, {missing} without a webhook after 60 s",
        sent.lock().map_or(0, |s| s.len())
    );
    db_size::print(&db, n);

    drop(gateway);
    wait_online(&sim, 0, Duration::from_secs(60)).await?;
    sim.reset_most_handshakes();
    let restart = Instant::now();
    let gateway = start_gateway(&bin, &db, &sim.ws_url(), port, o.bound, true).await?;
    wait_online(&sim, n, Duration::from_secs(900)).await?;
    wait_gateway_online(&http, &gateway.base, &ids, Duration::from_secs(600)).await?;
    // From the new process's start: its boot is part of coming back.
    let back = restart.elapsed();
    let most = sim.most_handshakes();
    let rss = rss_kib(gateway.child.id())?;
    println!(
        "after SIGKILL: all {n} reconnected in {back:.1?}, at most {most} handshakes at once \
         (bound {}); RSS {:.1} MiB after the reconnect",
        o.bound,
        mib(rss)
    );

    let upward = slope > 0.05 * mib(last);
    let verdicts = [
        ("RSS <= 8 MiB per instance", per_instance <= 8.0),
        ("no upward RSS trend in the last half", !upward),
        ("reconnected within 90 s", back <= Duration::from_secs(90)),
        ("resume bound held", most <= o.bound),
        ("p99 event-to-webhook < 250 ms", p99 < 250.0 && missing == 0),
    ];
    for (target, met) in verdicts {
        println!("  target {target}: {}", if met { "met" } else { "MISSED" });
    }
    if !verdicts.iter().all(|v| v.1) {
        println!(
            "  what the figures above point at: the tables with the most bytes per instance, \
             and RSS growth against the seeding and the workload phases"
        );
    }
    Ok(())
}

/// Seeds every number, `seed_concurrency` at a time, each waited for
/// until the gateway acknowledged all its messages.
async fn seed_all(sim: &Arc<Sim>, phones: &[String], o: &Options) -> BenchResult<Vec<Seeded>> {
    let started = Instant::now();
    let mut all = Vec::with_capacity(phones.len());
    for chunk in phones.chunks(o.seed_concurrency) {
        let runs = chunk.iter().map(|phone| {
            let sim = sim.clone();
            let seed = o.seed.clone();
            async move {
                let seeded = sim.seed(phone, &seed).await?;
                sim.wait_acked(phone, Duration::from_secs(600)).await?;
                Ok::<_, wasim::SimError>(seeded)
            }
        });
        for seeded in futures_util::future::join_all(runs).await {
            all.push(seeded?);
        }
    }
    let messages: usize = all.iter().map(|s| s.messages.len()).sum();
    let elapsed = started.elapsed();
    println!(
        "seeded {} instances in {elapsed:.1?} ({:.2?} each, {messages} messages taken in, {:.0} \
         per second)",
        phones.len(),
        elapsed / phones.len().max(1) as u32,
        messages as f64 / elapsed.as_secs_f64()
    );
    Ok(all)
}

/// The mixed workload; returns the RSS samples (seconds, KiB) taken every
/// 30 s.
#[allow(clippy::too_many_arguments)]
async fn workload(
    http: &reqwest::Client,
    base: &str,
    sim: &Arc<Sim>,
    phones: &[String],
    seeded: &[Seeded],
    o: &Options,
    sent: &Sent,
    gateway: &crate::Gateway,
) -> BenchResult<Vec<(f64, u64)>> {
    // Each group's speakers: its members other than the seeded number.
    let mut groups: Vec<(usize, String, Vec<String>)> = Vec::new();
    for (i, s) in seeded.iter().enumerate() {
        for (jid, _) in &s.groups {
            let members = sim
                .group_members(jid)
                .unwrap_or_default()
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| *m != phones[i])
                .collect();
            groups.push((i, jid.clone(), members));
        }
    }
    let n = phones.len() as f64;
    let per_sec = |per_min: f64| per_min * n / 60.0;
    let rates = [
        per_sec(o.inbound_per_min),
        per_sec(o.group_per_min),
        per_sec(o.sends_per_min),
    ];
    let mut done = [0u64; 3];
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(o.minutes * 60.0);
    let mut next_sample = started;
    let mut samples = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let (failed, accepted) = (Arc::new(Mutex::new(0u64)), Arc::new(Mutex::new(0u64)));
    while Instant::now() < until {
        if Instant::now() >= next_sample {
            let rss = rss_kib(gateway.child.id())?;
            let at = started.elapsed().as_secs_f64();
            println!("  {at:>5.0} s: RSS {:.1} MiB", mib(rss));
            samples.push((at, rss));
            next_sample += Duration::from_secs(30);
        }
        let elapsed = started.elapsed().as_secs_f64();
        for kind in 0..3 {
            while (done[kind] as f64) < rates[kind] * elapsed {
                done[kind] += 1;
                let (sim, sent, failed) = (sim.clone(), sent.clone(), failed.clone());
                let i = pick(phones.len());
                let phone = phones[i].clone();
                let contact = o.seed.contact(pick(o.seed.contacts));
                match kind {
                    0 => {
                        tasks.spawn(async move {
                            let t0 = Instant::now();
                            match sim.send_text(&contact, &phone, "pesan baru").await {
                                Ok(id) => sent.lock().map(|mut s| s.push((t0, id))).unwrap_or(()),
                                Err(_) => failed.lock().map(|mut f| *f += 1).unwrap_or(()),
                            }
                        });
                    }
                    1 if !groups.is_empty() => {
                        let (_, jid, members) = groups[pick(groups.len())].clone();
                        let from = members[pick(members.len())].clone();
                        tasks.spawn(async move {
                            let t0 = Instant::now();
                            match sim.send_group_text(&from, &jid, "pesan grup").await {
                                Ok(id) => sent.lock().map(|mut s| s.push((t0, id))).unwrap_or(()),
                                Err(_) => failed.lock().map(|mut f| *f += 1).unwrap_or(()),
                            }
                        });
                    }
                    2 => {
                        let (http, base, accepted) =
                            (http.clone(), base.to_owned(), accepted.clone());
                        tasks.spawn(async move {
                            let sent = api(
                                &http,
                                reqwest::Method::POST,
                                format!("{base}/send/by-number/{phone}"),
                                json!({ "to": contact, "text": "balasan" }),
                            )
                            .await;
                            let Some(id) = sent
                                .ok()
                                .and_then(|v: Value| v["message_id"].as_str().map(str::to_owned))
                            else {
                                let _ = failed.lock().map(|mut f| *f += 1);
                                return;
                            };
                            let _ = accepted.lock().map(|mut a| *a += 1);
                            // The contact's receipts, once the simulator
                            // has the message.
                            let deadline = Instant::now() + Duration::from_secs(10);
                            while sim.deliver(&id).is_err() && Instant::now() < deadline {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            let _ = sim.read(&id);
                        });
                    }
                    _ => {}
                }
            }
        }
        while let Some(joined) = tasks.try_join_next() {
            joined?;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while let Some(joined) = tasks.join_next().await {
        joined?;
    }
    let rss = rss_kib(gateway.child.id())?;
    samples.push((started.elapsed().as_secs_f64(), rss));
    println!(
        "workload: {} inbound 1:1, {} group, {} sends accepted, {} failed, in {:.1?}",
        done[0],
        done[1],
        accepted.lock().map_or(0, |a| *a),
        failed.lock().map_or(0, |f| *f),
        started.elapsed()
    );
    Ok(samples)
}

/// Least-squares slope of RSS over time, in MiB per hour.
fn trend(samples: &[(f64, u64)]) -> f64 {
    if samples.len() < 2 {
        return 0.0;
    }
    let k = samples.len() as f64;
    let mx = samples.iter().map(|s| s.0).sum::<f64>() / k;
    let my = samples.iter().map(|s| mib(s.1)).sum::<f64>() / k;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in samples {
        num += (x - mx) * (mib(*y) - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den * 3600.0 }
}

/// p50 and p99 in ms from each inbound message's send to its
/// `message.received` webhook, waiting up to 60 s for the last; and how
/// many never came.
async fn latency(hooks: &receiver::Receiver, sent: &Sent) -> (f64, f64, usize) {
    let list = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while list
        .iter()
        .any(|(_, id)| !hooks.has("message.received", id))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ms: Vec<f64> = list
        .iter()
        .filter_map(|(t0, id)| {
            hooks
                .arrived("message.received", id)
                .map(|t| t.saturating_duration_since(*t0).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = list.len() - ms.len();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            ms[((ms.len() - 1) as f64 * q).round() as usize]
        }
    };
    (at(0.5), at(0.99), missing)
}
