//! Load generator for taler-lite (issue 6): drives the real server over HTTP
//! from this separate process and prints one JSON line per scenario on stdout,
//! and the same figures as a Markdown table on stderr.
//!
//! ```sh
//! cargo run --release --example loadgen -- all            # every scenario
//! cargo run --release --example loadgen -- registration   # one of them
//! cargo run --release --example loadgen -- registration --url http://127.0.0.1:8081/ \
//!     --database ./taler-lite.sqlite3 --pid $(pidof taler-lite)
//! ```
//!
//! Without `--url` each scenario builds `target/<profile>/taler-lite` (through
//! `$CARGO build`) and starts it fresh on a temporary database with
//! `serve --listen 127.0.0.1:0`, through the integration tests' `TestServer`
//! (`tests/common/mod.rs`, included below): it reads the URL from the
//! "listening on URL" line on stderr and drains stderr for the server's whole
//! life so the pipe never fills. A fresh server per scenario keeps the peak RSS
//! (`VmHWM` in `/proc/PID/status`), the CPU figures and the database of one
//! scenario apart from the others.
//!
//! Scenarios (targets from issue 6, for a 2-core machine):
//! - `registration`: `--clients` (64) concurrent connections post
//!   `/taler-prepared-transfer/registration`, every request with a fresh key
//!   pair, all signed before the clock starts. Only 200s count. Reference:
//!   single-core Ed25519 verifications per second with the server's own
//!   verification code (same crate), measured in this run. Targets (issue 13):
//!   throughput >= 0.45 x reference, p99 <= 10 ms, server CPU per registration
//!   <= 2.0 verifications' CPU, the writer thread's <= 0.4.
//! - `auditors`: the same for `POST /management/auditors` (204) with fresh
//!   auditor keys, signed by a master key this program holds. Targets (issue 6):
//!   throughput >= 0.5 x reference, p99 <= 20 ms.
//! - `upload`: one 1 GiB body (generated in memory from shared 1 MiB blocks,
//!   hashed and signed before the clock starts) to `POST /kyc-bulk/$EXTERN_PUB`.
//!   References: SHA-512 throughput (one core, same crate) and fsync'd
//!   sequential write throughput in the database's directory (reported beside
//!   it). Targets (issue 13): MB/s >= 0.5 x SHA-512's, server CPU per MB <= 2.0 x
//!   SHA-512's CPU per MB, server peak RSS <= 32 MiB.
//! - `mixed`: the registration load while two different 1 GiB uploads
//!   stream. Targets (issue 13): registration p99 <= 2 x the `registration` p99
//!   and each upload's time <= 1.5 x the `upload` time, both measured in the same run
//!   (they are run first if not asked for).
//! - `startup`: from spawning the binary on a fresh database to the first 200
//!   of `GET /config`, median of 20 starts. Target: <= 50 ms.
//! - `scale` (not in `all`: the preload takes half a minute): the `registration`
//!   load against a database already holding 10^6 registrations, bulk-loaded once
//!   in one SQL transaction through the server's own schema (random keys,
//!   responses of a real one's size) while the fresh server idles; then the
//!   operator's list, median of 31 requests of the first page (`limit=20`) and
//!   of the last (`limit=-20`). Targets: those of `registration`, its
//!   registrations/s >= 0.8 x the `registration` scenario's (on an empty
//!   database; run first if not asked for), and last page / first page
//!   latency <= 2.
//! - `journal` (not in `all`): the `registration` load against two development servers,
//!   one with the journal of requests off (`--dev --journal-size 0`) and one with it on
//!   (`--dev`, 1000 entries), driven alternately in four rounds each so that both see the
//!   same machine. Figure: registrations/s with the journal on / off. Target: >= 0.8.
//! - `longpoll` (not in `all`; issue 19): `--polls` (1000) Wire Gateway `history/incoming` long
//!   polls, as wirewatch makes them (half with the deprecated `delta`/`start`/`long_poll_ms`), spread
//!   over 10 accounts of a server started with 10 `--credit-account`s; every answered poll asks again
//!   after the row it got. The server's `taler_lite_long_polls_waiting` gauge says when all wait.
//!   Figures: the server's CPU over 5 idle seconds with no poll and with all waiting; its RSS
//!   (`VmRSS`) after the registrations with no poll and with all waiting; registrations/s
//!   (`--requests`/4 per phase) with no poll and then with all waiting, and
//!   their ratio; then 200 rounds of one `admin/add-incoming` to one account in turn: the time from
//!   its 200 (and from sending it) to the last of that account's polls answered with its row, p50 and
//!   p99. Answers of other accounts' polls count as failures. Targets: CPU while the polls wait <= 1%
//!   of one core; registrations/s with them / without >= 0.8. Each waiting poll holds a socket on both
//!   sides: a soft limit on open files below polls + clients + 256 is raised with `prlimit` (up to
//!   the hard limit; else run `ulimit -n` first). The server inherits it.
//! - `replicate` (not in `all`; needs `litestream` and `moto_server`): the `registration` load
//!   against a plain server and two under `litestream replicate -exec` (checkpoints `external`
//!   and `auto`) replicating to a local S3 server, in alternating rounds for `--seconds`; WAL
//!   sizes, replica lag by restoring, and a `kill -9` drill (`examples/loadgen/replicate.rs`).
//!   Target: registrations/s under Litestream (external) / plain >= 0.8.
//!
//! Reading the output: each line has `scenario`, the measured figures
//! (`throughput` with its `unit`, `latency_ms` p50/p99/max over all answered
//! requests, `server_peak_rss_mib`; for `registration` and `upload` also
//! `server_rss_at_end_mib`, the resident set after the load split into `anon`
//! (allocated) and `file` (mostly the binary's code); for `registration`, `auditors` and
//! `scale` also `commit_groups`, the writer's commits during the load and the jobs per
//! commit, which the writer's CPU per operation follows), `reference` (what, value, unit),
//! `ratio` (figure / reference), `targets` (each with its limit, value and
//! `met`) and `met` (all targets met and no request failed). `failed` counts
//! answers with an unexpected status; `rows_checked` says whether the rows
//! stored in the database were counted and matched the successful answers. MB
//! are 10^6 bytes, MiB 2^20.
//!
//! CPU per operation (`cpu`, issue 13): the server's user+system time
//! (`/proc/PID/stat` fields 14 and 15, in clock ticks of `getconf CLK_TCK`)
//! over the measured phase only, divided by the successful operations (`per`:
//! a registration, an auditor enable, an uploaded MB; in `mixed` per
//! registration but including the uploads' CPU). The same per thread group from
//! `/proc/PID/task/*/stat`, told apart by the names in `/proc/PID/task/TID/comm`:
//! `writer` ("taler-lite-writer"), `workers` ("tl-worker-K", tokio's workers),
//! `blocking` ("tl-blocking", tokio's blocking pool), `main` (the thread of
//! `main`, which runs the accept loop), `other` (r2d2's pool threads, the log thread "tl-log") and
//! `unattributed` (the process's CPU not in a live thread's figure: threads
//! that exited during the phase, and each thread's whole-tick rounding). Each
//! `us` has its `ratio` to the CPU time of one reference operation measured by
//! this program on one core in the same run (its thread's CPU, from
//! `/proc/thread-self/schedstat`): one Ed25519 verification for registrations
//! and auditors, SHA-512 of one MB for uploads. Each reference is measured just
//! before the scenario's load and again just after it, and the mean is used
//! (both are in `runs_cpu_us`): this machine's speed drifts within minutes. A tick is 10 ms at 100 per
//! second: the process's figure over a phase of a few seconds is good to well
//! under 1%, a thread group's to about a tick per thread. `startup` reports CPU
//! per start, from the process's start to its first answer, from
//! `/proc/PID/task/*/schedstat` (ns): a start takes less than a tick.
//!
//! The load generator shares the machine with the server: its own HTTP work
//! takes CPU from the server, as a real client on the same box would.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};
use taler_lite::crypto::{
    EddsaPrivateKey, EddsaPublicKey, EddsaSignature, ExternKycDataBulkBindingPS, HashCode,
    MasterAddAuditorPS, SignedStruct,
};
use taler_lite::payto::Payto;
use taler_lite::timestamp::Timestamp;

/// The integration tests' server harness, shared so that both start the server the same way.
#[path = "../tests/common/mod.rs"]
mod common;
use common::TestServer;

#[path = "loadgen/longpoll.rs"]
mod longpoll;
/// `replicate`: the registration load with Litestream replicating (its own file: it brings
/// moto and Litestream along).
#[path = "loadgen/replicate.rs"]
mod replicate;

/// The credit account of the server's defaults (registrations must name one of its accounts).
const DEFAULT_ACCOUNT: &str = "payto://iban/CH4431999123000889012?receiver-name=Exchange";
const CUSTOMER_PAYTO: &str = "payto://iban/DE89370400440532013000?receiver-name=Erika%20Mustermann";
const MIB: u64 = 1 << 20;
/// Upper bound on a registration or auditors load phase, whatever the request count.
const PHASE_LIMIT: Duration = Duration::from_secs(25);
/// What the registration and auditors CPU figures are compared with.
const ED25519_CPU: &str = "one Ed25519 verification (CPU time, one core, taler_lite::crypto)";
/// Upper bound on the mixed scenario's registration load (it normally stops
/// when both uploads are done; two 1 GiB uploads took about 40 s here).
const MIXED_LIMIT: Duration = Duration::from_secs(90);

#[derive(Parser, Debug)]
#[command(about = "taler-lite load generator (issue 6); prints one JSON line per scenario")]
struct Options {
    /// registration, auditors, upload, mixed, startup, scale, journal, longpoll, replicate or all (several may be given).
    #[arg(default_value = "all")]
    scenarios: Vec<String>,
    /// Drive an already running server at this loopback URL instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Operator token of the `--url` server (needed for `upload`: it registers a third party).
    #[arg(long)]
    token: Option<String>,
    /// Master private key file of the `--url` server (needed for `auditors`).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Database of the `--url` server, to count stored rows afterwards.
    #[arg(long)]
    database: Option<PathBuf>,
    /// Process id of the `--url` server, for its peak RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Credit account for registrations (must be one of the server's).
    #[arg(long, default_value = DEFAULT_ACCOUNT)]
    credit_account: String,
    /// The server binary to start (default: build and use target/<profile>/taler-lite).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Concurrent client connections for registration, auditors and mixed.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Requests in the registration and auditors scenarios (each also stops after 25 s).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Size of each upload in MiB.
    #[arg(long, default_value_t = 1024)]
    upload_mib: u64,
    /// Starts in the startup scenario.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Waiting history requests in the longpoll scenario.
    #[arg(long, default_value_t = 1000)]
    polls: usize,
    /// Length of the replicate scenario's measured load, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

// ---------------------------------------------------------------- the server

/// Starts `bin serve` on a fresh database in a fresh directory with `args`, through the
/// integration tests' `TestServer` (killed, with its throw-away directory, when dropped).
fn start_server(bin: &Path, args: &[String], client: &reqwest::Client) -> Result<TestServer, String> {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::try_start_with(bin, dir, &args, Some(client.clone()))
}

/// The last lines the server wrote to stderr.
fn tail_of_log(server: &TestServer) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Builds the server binary of this example's profile and returns its path.
fn server_binary(options: &Options) -> PathBuf {
    if let Some(bin) = &options.server_bin {
        return bin.clone();
    }
    // This example runs as target/<profile>/examples/loadgen.
    let exe = std::env::current_exe().expect("own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/examples/loadgen");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("release");
    if profile != "release" {
        eprintln!("loadgen: WARNING: profile {profile}; figures of a non-release build mean little");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_profile = if profile == "debug" { "dev" } else { profile };
    let status = Command::new(&cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--profile", cargo_profile, "--bin", "taler-lite"])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(status.success(), "building the server failed");
    profile_dir.join("taler-lite")
}

/// Peak resident set (`VmHWM`) of a process, in MiB.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resident set of a process now, split into anonymous memory (what the server allocated)
/// and file-backed pages (mostly its own code, which grows with the binary and is shared
/// and reclaimable), in MiB.
fn rss_parts_mib(pid: u32) -> Option<Value> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let kib: f64 =
            status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()?;
        Some(round(kib / 1024.0, 1))
    };
    Some(json!({"anon": field("RssAnon:")?, "file": field("RssFile:")?}))
}

/// Where a scenario sends its requests, and what it can inspect afterwards.
struct Target {
    url: String,
    token: Option<String>,
    db: Option<PathBuf>,
    pid: Option<u32>,
    spawned: Option<TestServer>,
}

impl Target {
    fn endpoint(&self, path: &str) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), path)
    }

    fn peak_rss_mib(&self) -> Option<f64> {
        self.pid.and_then(peak_rss_mib)
    }

    fn rss_parts_mib(&self) -> Option<Value> {
        self.pid.and_then(rss_parts_mib)
    }

    /// The operator token: given with `--token`, or read from the started server's folder.
    fn operator_token(&self) -> Option<String> {
        self.token.clone().or_else(|| self.spawned.as_ref().map(|s| s.token.clone()))
    }

    /// The writer's commits and the jobs they carried so far (the server's metrics): the
    /// writer's CPU per operation follows how many jobs share a commit and its fsync, which
    /// varies from run to run, so a comparison of CPU figures needs it beside them.
    async fn commit_counts(&self, client: &reqwest::Client) -> Option<(f64, f64)> {
        let token = self.operator_token()?;
        let text =
            client.get(self.endpoint("metrics")).bearer_auth(token).send().await.ok()?.text().await.ok()?;
        let value = |name: &str| -> Option<f64> {
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        };
        Some((value("taler_lite_db_commits_total")?, value("taler_lite_db_commit_group_jobs_sum")?))
    }

    /// The server's CPU so far, when its process id is known.
    fn cpu_snapshot(&self, source: CpuSource) -> Option<CpuSnapshot> {
        self.pid.and_then(|pid| cpu_snapshot(pid, source))
    }

    /// The server's CPU since `start` (taken at the beginning of the measured phase).
    fn cpu_since(&self, start: Option<&CpuSnapshot>, source: CpuSource) -> Option<CpuUse> {
        let start = start?;
        Some(CpuUse::between(Some(start), &self.cpu_snapshot(source)?, source))
    }

    /// `SELECT count(*)` through a read-only connection, when the database is known.
    fn count(&self, sql: &str) -> Option<i64> {
        let db = self.db.as_ref()?;
        let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database read-only");
        conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
        Some(conn.query_row(sql, [], |r| r.get(0)).expect("count rows"))
    }

    fn describe_failure(&self) -> String {
        self.spawned.as_ref().map(tail_of_log).unwrap_or_default()
    }
}

struct Context {
    options: Options,
    bin: Option<PathBuf>,
    /// Clock ticks per second of `/proc/PID/stat`.
    ticks_per_s: f64,
    client: reqwest::Client,
    /// Figures of earlier scenarios of this run, for `mixed`.
    registration_p99_ms: Option<f64>,
    registration_throughput: Option<f64>,
    upload_secs: Option<f64>,
}

impl Context {
    /// Where the measured phases' CPU figures come from.
    fn cpu_source(&self) -> CpuSource {
        CpuSource::Stat { ticks_per_s: self.ticks_per_s }
    }

    /// The server for a scenario: a fresh one with `args`, or the `--url` one.
    fn target(&self, args: &[String]) -> Target {
        match &self.options.url {
            Some(url) => Target {
                url: url.clone(),
                token: self.options.token.clone(),
                db: self.options.database.clone(),
                pid: self.options.pid,
                spawned: None,
            },
            None => {
                let spawned = start_server(self.bin.as_ref().expect("server binary"), args, &self.client)
                    .unwrap_or_else(|log| panic!("the server did not start:\n{log}"));
                Target {
                    url: spawned.url.clone(),
                    token: None,
                    db: Some(spawned.db.clone()),
                    pid: Some(spawned.pid()),
                    spawned: Some(spawned),
                }
            }
        }
    }
}

// ---------------------------------------------------------------- measuring

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// What a request load produced.
struct Load {
    latencies: Vec<Duration>,
    ok: usize,
    failed: usize,
    first_failures: Vec<String>,
    elapsed: Duration,
}

impl Load {
    fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn latency_json(&mut self) -> Value {
        self.latencies.sort_unstable();
        json!({
            "p50": round(percentile_ms(&self.latencies, 0.50), 2),
            "p99": round(percentile_ms(&self.latencies, 0.99), 2),
            "max": round(percentile_ms(&self.latencies, 1.0), 2),
        })
    }
}

/// Posts the prepared JSON `bodies` to `url` over `clients` concurrent
/// connections until they are used up, `stop` is set, or `limit` passes.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<Bytes>,
    clients: usize,
    expect: u16,
    stop: Option<Arc<AtomicBool>>,
    limit: Duration,
) -> Load {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, url, bodies, next, stop) =
            (client.clone(), url.to_owned(), bodies.clone(), next.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            loop {
                if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) || Instant::now() > deadline {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let answer = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let outcome = match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(_) if status == expect => Ok(()),
                            Ok(text) => Err(format!("{status}: {}", String::from_utf8_lossy(&text))),
                            Err(e) => Err(format!("{status}, body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                match outcome {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(e) => failures.push(e),
                }
            }
            (latencies, failures)
        }));
    }
    let mut load =
        Load { latencies: Vec::new(), ok: 0, failed: 0, first_failures: Vec::new(), elapsed: Duration::ZERO };
    for task in tasks {
        let (latencies, failures) = task.await.expect("client task");
        load.ok += latencies.len();
        load.latencies.extend(latencies);
        load.failed += failures.len();
        load.first_failures.extend(failures.into_iter().take(3));
    }
    load.elapsed = start.elapsed();
    load.first_failures.truncate(5);
    load
}

/// Makes `n` items with `make` on every core (signing before the clock starts).
fn make_parallel<T: Send>(n: usize, make: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let make = &make;
                s.spawn(move || (t * per..((t + 1) * per).min(n)).map(make).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("signing thread")).collect()
    })
}

// ---------------------------------------------------------------- CPU time

/// Clock ticks per second of `/proc`'s `utime` and `stime` (`getconf CLK_TCK`, asked once).
fn clock_ticks_per_s() -> f64 {
    let asked =
        Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|out| {
            String::from_utf8_lossy(&out.stdout).trim().parse::<f64>().ok().filter(|t| *t > 0.0)
        });
    asked.unwrap_or_else(|| {
        eprintln!("loadgen: WARNING: `getconf CLK_TCK` failed; assuming 100 clock ticks per second");
        100.0
    })
}

/// `utime + stime` (fields 14 and 15, clock ticks) of a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<u64> {
    // Field 2, the name, is in parentheses and may hold spaces and parentheses itself.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    // `fields[0]` is field 3 (the state), so field n is `fields[n - 3]`.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The server's thread groups, told apart by thread name (`/proc/PID/task/TID/comm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    /// "taler-lite-writer", which the kernel shortens to 15 bytes.
    Writer,
    /// "tl-worker-K": tokio's worker threads (named in src/main.rs).
    Workers,
    /// "tl-blocking": tokio's blocking pool (`spawn_blocking`).
    Blocking,
    /// The thread running `main` (its `block_on` future: the accept loop).
    Main,
    /// Any other thread.
    Other,
}

impl Group {
    const ALL: [Group; 5] = [Group::Writer, Group::Workers, Group::Blocking, Group::Main, Group::Other];

    fn of(pid: u32, tid: u32, comm: &str) -> Group {
        if comm.starts_with("taler-lite-writ") {
            Group::Writer
        } else if comm.starts_with("tl-worker-") {
            Group::Workers
        } else if comm == "tl-blocking" {
            Group::Blocking
        } else if tid == pid {
            Group::Main
        } else {
            Group::Other
        }
    }

    fn key(self) -> &'static str {
        match self {
            Group::Writer => "writer",
            Group::Workers => "workers",
            Group::Blocking => "blocking",
            Group::Main => "main",
            Group::Other => "other",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Group::Writer => "writer thread",
            Group::Workers => "tokio workers",
            Group::Blocking => "blocking threads",
            Group::Main => "main thread",
            Group::Other => "other threads",
        }
    }
}

/// Where CPU times come from.
#[derive(Clone, Copy)]
enum CpuSource {
    /// `utime + stime` of `/proc/PID/stat` and `/proc/PID/task/TID/stat`, in clock ticks: the
    /// process's figure includes its exited threads. For the measured phases.
    Stat { ticks_per_s: f64 },
    /// `/proc/PID/task/TID/schedstat` (ns) of the live threads, summed: for `startup`, whose few
    /// milliseconds per start are below a clock tick (and whose threads all still live).
    Schedstat,
}

impl CpuSource {
    fn describe(self) -> String {
        match self {
            CpuSource::Stat { ticks_per_s } => {
                format!("utime+stime of /proc/PID/stat and /proc/PID/task/*/stat, {ticks_per_s} ticks/s")
            }
            CpuSource::Schedstat => "sum of /proc/PID/task/*/schedstat (ns) of the live threads".to_owned(),
        }
    }
}

/// The CPU time (ns) a process and each of its live threads have used so far.
struct CpuSnapshot {
    process: u64,
    /// Thread id, group and CPU ns.
    threads: Vec<(u32, Group, u64)>,
}

/// Reads `/proc/PID/task/*/{stat or schedstat,comm}` (and `/proc/PID/stat`); `None` when the
/// process is gone.
fn cpu_snapshot(pid: u32, source: CpuSource) -> Option<CpuSnapshot> {
    let ticks_ns =
        |stat: &str, ticks_per_s: f64| stat_ticks(stat).map(|t| (t as f64 * 1e9 / ticks_per_s) as u64);
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        // A thread may exit between the listing and the reads: it is then not counted here (with
        // `Stat`, its CPU stays in the process's figure).
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let ns = match source {
            CpuSource::Stat { ticks_per_s } => std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| ticks_ns(&stat, ticks_per_s)),
            CpuSource::Schedstat => std::fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok())),
        };
        if let Some(ns) = ns {
            threads.push((tid, Group::of(pid, tid, comm.trim_end()), ns));
        }
    }
    let process = match source {
        // Read after the threads, so that it includes at least what they used.
        CpuSource::Stat { ticks_per_s } => {
            ticks_ns(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?, ticks_per_s)?
        }
        CpuSource::Schedstat => threads.iter().map(|t| t.2).sum(),
    };
    Some(CpuSnapshot { process, threads })
}

/// The server's CPU over a measured phase: from `start` (`None`: from the process's start) to `end`.
struct CpuUse {
    source: CpuSource,
    /// ns.
    process: u64,
    /// CPU ns and number of threads per group, indexed by `Group as usize` (`Group::ALL` order).
    groups: [(u64, usize); 5],
}

impl CpuUse {
    fn between(start: Option<&CpuSnapshot>, end: &CpuSnapshot, source: CpuSource) -> CpuUse {
        let mut groups = [(0u64, 0usize); 5];
        for &(tid, group, ns) in &end.threads {
            // A thread started during the phase counts from zero.
            let before =
                start.and_then(|s| s.threads.iter().find(|t| t.0 == tid)).map_or(0, |&(_, _, ns)| ns);
            let slot = &mut groups[group as usize];
            slot.0 += ns.saturating_sub(before);
            slot.1 += 1;
        }
        let process = end.process.saturating_sub(start.map_or(0, |s| s.process));
        CpuUse { source, process, groups }
    }

    /// Adds another start's figures (`startup`).
    fn add(&mut self, other: &CpuUse) {
        self.process += other.process;
        for (s, o) in self.groups.iter_mut().zip(other.groups) {
            s.0 += o.0;
            s.1 = s.1.max(o.1);
        }
    }

    /// CPU of the process not found in a live thread's figure: threads that exited during the
    /// phase, and rounding (each thread's `utime` and `stime` are whole ticks).
    fn unattributed(&self) -> i64 {
        self.process as i64 - self.groups.iter().map(|g| g.0 as i64).sum::<i64>()
    }

    /// CPU per operation of the whole process (`None`) or of one thread group, as a multiple of
    /// the CPU of one reference operation (the figures issue 13's targets are set in).
    fn ratio(&self, group: Option<Group>, operations: f64, reference_us: f64) -> f64 {
        let ns = match group {
            None => self.process,
            Some(g) => self.groups[g as usize].0,
        };
        ns as f64 / 1e3 / operations / reference_us
    }

    /// The JSON `cpu` object: µs per operation of the process and of each thread group, and each
    /// as a multiple of `reference_us` (the CPU of one reference operation, when there is one).
    fn json(&self, per: &str, operations: f64, reference_what: &str, reference_us: Option<f64>) -> Value {
        let us = |ns: f64| ns / 1e3 / operations;
        let figure = |us: f64| json!({"us": round(us, 2), "ratio": reference_us.map(|r| round(us / r, 3))});
        let mut out = json!({
            "per": per,
            "operations": round(operations, 3),
            "source": self.source.describe(),
            "server_cpu_seconds": round(self.process as f64 / 1e9, 3),
            "reference": {"what": reference_what, "us": reference_us.map(|r| round(r, 3))},
            "server": figure(us(self.process as f64)),
        });
        for (group, (ns, threads)) in Group::ALL.iter().zip(self.groups) {
            let mut g = figure(us(ns as f64));
            g["threads"] = json!(threads);
            out[group.key()] = g;
        }
        out["unattributed"] = figure(us(self.unattributed() as f64));
        if self.groups[Group::Workers as usize].1 == 0 {
            out["warning"] = json!("no thread named tl-worker-*: a server without named threads?");
        }
        out
    }
}

/// CPU time the calling thread has used, in ns: `/proc/thread-self/schedstat` (ns), or its
/// `stat` (clock ticks) where the kernel has no schedstat.
fn thread_cpu_ns(ticks_per_s: f64) -> u64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok();
    if let Some(ns) = schedstat.and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok())) {
        return ns;
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    let ticks = stat_ticks(&stat).expect("utime and stime in /proc/thread-self/stat");
    (ticks as f64 / ticks_per_s * 1e9) as u64
}

// ---------------------------------------------------------------- references

/// A reference measured by this program on one core: operations per second of wall time, and the
/// CPU time of one operation (the thread's own CPU, which the other processes on the machine
/// disturb much less than the wall time).
#[derive(Clone, Copy)]
struct Reference {
    per_s: f64,
    cpu_us: f64,
    /// The CPU µs of one operation in each measurement this one averages (before and after).
    runs_us: [f64; 2],
}

impl Reference {
    /// The mean of a measurement made before the scenario's load and one made after it: the
    /// machine's speed drifts (one core's verification took 53 to 73 µs in one `all` run), and
    /// bracketing the phase keeps the ratio from resting on one moment.
    fn bracket(before: Reference, after: Reference) -> Reference {
        Reference {
            per_s: (before.per_s + after.per_s) / 2.0,
            cpu_us: (before.cpu_us + after.cpu_us) / 2.0,
            runs_us: [before.cpu_us, after.cpu_us],
        }
    }

    fn runs_json(&self) -> Value {
        json!(self.runs_us.map(|us| round(us, 3)))
    }
}

/// Ed25519 verifications on one core, through the server's own verification
/// (`EddsaPublicKey::verify`: canonical check, decompression, strict verify),
/// over distinct keys so nothing is cached.
fn reference_ed25519(ticks_per_s: f64) -> Reference {
    let samples: Vec<(EddsaPublicKey, [u8; 32], EddsaSignature)> = (0..256)
        .map(|_| {
            let k = EddsaPrivateKey::generate().expect("randomness");
            let msg = *EddsaPrivateKey::generate().expect("randomness").public_key().as_bytes();
            (k.public_key(), msg, k.sign(&msg))
        })
        .collect();
    let cpu_start = thread_cpu_ns(ticks_per_s);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for (key, msg, sig) in &samples {
            assert!(key.verify(msg, sig), "reference signature must verify");
        }
        n += samples.len() as u64;
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns(ticks_per_s).saturating_sub(cpu_start);
    let cpu_us = cpu_ns as f64 / 1e3 / n as f64;
    Reference { per_s, cpu_us, runs_us: [cpu_us; 2] }
}

/// SHA-512 on one core, with the server's crate, over 512 MiB in 1 MiB updates: MB/s and the CPU µs of one MB.
fn reference_sha512(ticks_per_s: f64) -> Reference {
    let block = filler_block(7);
    let mut h = Sha512::new();
    let cpu_start = thread_cpu_ns(ticks_per_s);
    let start = Instant::now();
    for _ in 0..512 {
        h.update(&block);
    }
    std::hint::black_box(h.finalize());
    let mb = (512 * MIB) as f64 / 1e6;
    let per_s = mb / start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns(ticks_per_s).saturating_sub(cpu_start);
    let cpu_us = cpu_ns as f64 / 1e3 / mb;
    Reference { per_s, cpu_us, runs_us: [cpu_us; 2] }
}

/// Sequential write MB/s in `dir` (the database's directory): 512 MiB in
/// 1 MiB writes with an fsync every 8 MiB and at the end, so the figure is
/// the disk's and not the page cache's.
fn reference_disk(dir: &Path) -> f64 {
    let path = dir.join("loadgen-disk-reference");
    let block = filler_block(11);
    let mut file = std::fs::File::create(&path).expect("create the disk reference file");
    let start = Instant::now();
    for i in 1..=512u64 {
        file.write_all(&block).expect("write the disk reference file");
        if i % 8 == 0 {
            file.sync_data().expect("fsync the disk reference file");
        }
    }
    file.sync_all().expect("fsync the disk reference file");
    let mbps = (512 * MIB) as f64 / 1e6 / start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    mbps
}

/// 1 MiB of xorshift noise (incompressible, like a scanned PDF).
fn filler_block(seed: u64) -> Vec<u8> {
    let mut block = vec![0u8; MIB as usize];
    let mut x = 0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    block
}

// ---------------------------------------------------------------- requests

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

async fn currency(client: &reqwest::Client, target: &Target) -> String {
    let config: Value = client
        .get(target.endpoint("config"))
        .send()
        .await
        .expect("GET /config")
        .json()
        .await
        .expect("/config is JSON");
    config["currency"].as_str().expect("/config has a currency").to_owned()
}

/// `n` registration bodies, each with a fresh authorization key that signs its account key.
fn registration_bodies(n: usize, currency: &str, account: &str) -> Vec<Bytes> {
    keyed_registrations(n, currency, account).into_iter().map(|(body, _)| body).collect()
}

/// `n` registration bodies, each with its `authorization_pub` as stored, signed on every core.
fn keyed_registrations(n: usize, currency: &str, account: &str) -> Vec<(Bytes, Vec<u8>)> {
    make_parallel(n, |_| {
        let auth = EddsaPrivateKey::generate().expect("randomness");
        let account_pub = EddsaPrivateKey::generate().expect("randomness").public_key();
        let body = json!({
            "credit_account": account,
            "type": "reserve",
            "recurrent": false,
            "credit_amount": format!("{currency}:10"),
            "alg": "EdDSA",
            "account_pub": account_pub.to_string(),
            "authorization_pub": auth.public_key().to_string(),
            "authorization_sig": auth.sign(account_pub.as_bytes()).to_string(),
        });
        (Bytes::from(body.to_string()), auth.public_key().as_bytes().to_vec())
    })
}

/// `n` auditor enable bodies, each for a fresh auditor key, signed by `master`.
fn auditor_bodies(n: usize, master: &EddsaPrivateKey) -> Vec<Bytes> {
    let t = now_s();
    make_parallel(n, |i| {
        let auditor = EddsaPrivateKey::generate().expect("randomness").public_key();
        let url = "https://auditor.example/";
        let sig = MasterAddAuditorPS::new(Timestamp::from_secs(t), auditor, url).sign(master);
        Bytes::from(
            json!({
                "auditor_url": url,
                "auditor_name": format!("Bench auditor {i}"),
                "auditor_pub": auditor.to_string(),
                "master_sig": sig.to_string(),
                "validity_start": {"t_s": t},
            })
            .to_string(),
        )
    })
}

/// An upload body as shared 1 MiB blocks (nothing of it is stored on the
/// client side), its hash and size. `variant` makes bodies differ.
struct UploadBody {
    parts: Vec<Bytes>,
    h_body: HashCode,
    size: u64,
}

fn upload_body(mib: u64, variant: u64) -> UploadBody {
    let mut first = filler_block(variant + 100);
    let header = format!("%PDF-1.7\n% taler-lite loadgen body {variant}\n");
    first[..header.len()].copy_from_slice(header.as_bytes());
    let filler = Bytes::from(filler_block(variant + 200));
    let mut parts = vec![Bytes::from(first)];
    parts.extend(std::iter::repeat_n(filler, (mib as usize).saturating_sub(1)));
    let mut h = Sha512::new();
    for p in &parts {
        h.update(p);
    }
    let digest: [u8; 64] = h.finalize().into();
    let size = parts.iter().map(|p| p.len() as u64).sum();
    UploadBody { parts, h_body: HashCode::from_bytes(digest), size }
}

/// A third party the server knows: started with `--extern-key`, or registered
/// through the operator API of a `--url` server.
async fn ensure_extern_key(client: &reqwest::Client, target: &Target, party: &EddsaPrivateKey) {
    if target.spawned.is_some() {
        return;
    }
    let token = target.token.as_ref().expect("--token is needed for uploads to a --url server");
    let answer = client
        .post(target.endpoint("private/extern-keys"))
        .bearer_auth(token)
        .json(&json!({"extern_pub": party.public_key().to_string(), "name": "loadgen"}))
        .send()
        .await
        .expect("POST /private/extern-keys");
    assert!(answer.status().is_success(), "registering the third party: {}", answer.status());
}

/// Sends one upload; returns its duration once the 204 arrived.
async fn upload(
    client: &reqwest::Client,
    target: &Target,
    party: &EddsaPrivateKey,
    body: &UploadBody,
) -> Result<Duration, String> {
    let payto: Payto = CUSTOMER_PAYTO.parse().expect("payto");
    let sig = ExternKycDataBulkBindingPS { h_body: body.h_body, h_payto: payto.full_hash() }.sign(party);
    let parts = body.parts.clone();
    let request = client
        .post(target.endpoint(&format!("kyc-bulk/{}", party.public_key())))
        .timeout(Duration::from_secs(120))
        .header("Content-Type", "application/pdf")
        .header("Content-Length", body.size)
        .header("Taler-Customer-Payto", CUSTOMER_PAYTO)
        .header("Taler-Extern-Signature", sig.to_string())
        .header("If-None-Match", body.h_body.to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts.into_iter().map(Ok::<_, std::io::Error>),
        )));
    let start = Instant::now();
    let response = request.send().await.map_err(|e| format!("upload: {e}"))?;
    let status = response.status().as_u16();
    let text = response.bytes().await.map_err(|e| format!("upload answer: {e}"))?;
    let took = start.elapsed();
    if status != 204 {
        return Err(format!("upload: {status}: {}", String::from_utf8_lossy(&text)));
    }
    Ok(took)
}

/// Whether the upload with this hash is stored complete (`None`: database unknown).
fn upload_stored(target: &Target, body: &UploadBody) -> Option<bool> {
    let hex: String = body.h_body.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let chunks = target.count(&format!(
        "SELECT count(*) FROM kyc_chunks JOIN kyc_contents USING (content_id)
          WHERE h_body = x'{hex}' AND size = {}",
        body.size
    ))?;
    let uploads = target.count(&format!(
        "SELECT count(*) FROM kyc_uploads u JOIN kyc_contents c USING (content_id) WHERE c.h_body = x'{hex}'"
    ))?;
    Some(chunks as u64 == body.size.div_ceil(MIB) && uploads == 1)
}

fn target_json(what: &str, value: f64, limit: f64, met: bool) -> Value {
    json!({"what": what, "value": round(value, 2), "limit": round(limit, 2), "met": met})
}

// ---------------------------------------------------------------- scenarios

/// `registration` and `auditors`: fresh keys, `clients` connections, durable answers only.
async fn request_scenario(ctx: &mut Context, name: &str) -> Value {
    let ed25519_before = reference_ed25519(ctx.ticks_per_s);
    let (args, master) = if name == "auditors" {
        let master = match &ctx.options.master_key_file {
            Some(f) => std::fs::read_to_string(f)
                .expect("read --master-key-file")
                .trim()
                .parse::<EddsaPrivateKey>()
                .expect("--master-key-file holds a base32 Ed25519 seed"),
            None => EddsaPrivateKey::generate().expect("randomness"),
        };
        (vec!["--master-public-key".to_owned(), master.public_key().to_string()], Some(master))
    } else {
        (Vec::new(), None)
    };
    if name == "auditors" && ctx.options.url.is_some() && ctx.options.master_key_file.is_none() {
        panic!("auditors against --url needs --master-key-file");
    }
    let target = ctx.target(&args);
    let preload_s = (name == "scale").then(|| bulk_load(&target, SCALE_ROWS));
    let clients = ctx.options.clients;
    let (path, expect, table) = match &master {
        Some(_) => ("management/auditors", 204, "auditors"),
        None => ("taler-prepared-transfer/registration", 200, "registrations"),
    };
    let rows_before = target.count(&format!("SELECT count(*) FROM {table}"));
    let make = |n: usize, currency: &str| match &master {
        Some(m) => auditor_bodies(n, m),
        None => registration_bodies(n, currency, &ctx.options.credit_account),
    };
    let currency = currency(&ctx.client, &target).await;
    // One request per connection first, so that connecting is not timed.
    let warmup = drive(
        &ctx.client,
        &target.endpoint(path),
        make(clients, &currency),
        clients,
        expect,
        None,
        PHASE_LIMIT,
    )
    .await;
    let bodies = make(ctx.options.requests, &currency);
    let commits_start = target.commit_counts(&ctx.client).await;
    let cpu_start = target.cpu_snapshot(ctx.cpu_source());
    let mut load =
        drive(&ctx.client, &target.endpoint(path), bodies, clients, expect, None, PHASE_LIMIT).await;
    let cpu = target.cpu_since(cpu_start.as_ref(), ctx.cpu_source());
    let commit_groups = match (commits_start, target.commit_counts(&ctx.client).await) {
        (Some((c0, j0)), Some((c1, j1))) if c1 > c0 => {
            json!({"commits": c1 - c0, "jobs_per_commit": round((j1 - j0) / (c1 - c0), 2)})
        }
        _ => Value::Null,
    };
    let ed25519 = Reference::bracket(ed25519_before, reference_ed25519(ctx.ticks_per_s));
    let reference = ed25519.per_s;
    let listing = match preload_s {
        Some(_) => Some(listing_latency(&ctx.client, &target).await),
        None => None,
    };

    let rows_after = target.count(&format!("SELECT count(*) FROM {table}"));
    let rows_checked = match (rows_before, rows_after) {
        (Some(b), Some(a)) => json!((a - b) as usize == warmup.ok + load.ok),
        _ => Value::Null,
    };
    let throughput = load.throughput();
    let latency = load.latency_json();
    let p99 = latency["p99"].as_f64().unwrap_or(f64::NAN);
    let ratio = throughput / reference;
    // Issue 13's targets for registrations (and `scale`); auditors keep issue 6's.
    let mut targets = if master.is_some() {
        vec![
            target_json("throughput >= 0.5 x reference (ratio)", ratio, 0.5, ratio >= 0.5),
            target_json("p99 latency ms <= 20", p99, 20.0, p99 <= 20.0),
        ]
    } else {
        let ops = load.ok as f64;
        let server = cpu.as_ref().map_or(f64::NAN, |c| c.ratio(None, ops, ed25519.cpu_us));
        let writer = cpu.as_ref().map_or(f64::NAN, |c| c.ratio(Some(Group::Writer), ops, ed25519.cpu_us));
        vec![
            target_json("throughput >= 0.45 x reference (ratio)", ratio, 0.45, ratio >= 0.45),
            target_json("p99 latency ms <= 10", p99, 10.0, p99 <= 10.0),
            target_json("server CPU per registration / one verification <= 2.0", server, 2.0, server <= 2.0),
            target_json("writer CPU per registration / one verification <= 0.4", writer, 0.4, writer <= 0.4),
        ]
    };
    if name == "scale" {
        let empty = ctx.registration_throughput.unwrap_or(f64::NAN);
        let r = throughput / empty;
        targets.push(target_json(
            "registrations/s at 10^6 rows / this run's registration scenario (empty database) >= 0.8",
            r,
            0.8,
            r >= 0.8,
        ));
    }
    if let Some(l) = &listing {
        let r = l["ratio"].as_f64().unwrap_or(f64::NAN);
        targets.push(target_json("listing: last page / first page latency <= 2", r, 2.0, r <= 2.0));
    }
    if name == "registration" {
        ctx.registration_p99_ms = Some(p99);
        ctx.registration_throughput = Some(throughput);
    }
    let failed = load.failed + warmup.failed;
    finish(
        json!({
            "scenario": name,
            "clients": clients,
            "ok": load.ok,
            "failed": failed,
            "first_failures": ([warmup.first_failures, load.first_failures].concat()),
            "seconds": round(load.elapsed.as_secs_f64(), 3),
            "throughput": round(throughput, 1),
            "unit": if master.is_some() { "enables/s" } else { "registrations/s" },
            "latency_ms": latency,
            "server_peak_rss_mib": target.peak_rss_mib().map(|m| round(m, 1)),
            "server_rss_at_end_mib": target.rss_parts_mib(),
            "commit_groups": commit_groups,
            "reference": {"what": "Ed25519 verifications/s, one core, ed25519-dalek via taler_lite::crypto (mean of one second before and one after the load)", "value": round(reference, 1), "unit": "verifications/s", "runs_cpu_us": ed25519.runs_json()},
            "ratio": round(ratio, 3),
            "cpu": cpu.map(|c| c.json(
                if master.is_some() { "enable" } else { "registration" },
                load.ok as f64,
                ED25519_CPU,
                Some(ed25519.cpu_us),
            )),
            "rows_checked": rows_checked,
            "preloaded": preload_s.map(|secs| json!({"rows": SCALE_ROWS, "seconds": round(secs, 1)})),
            "listing_ms": listing,
            "targets": targets,
        }),
        &target,
    )
}

/// Rows already in the database of the `scale` scenario.
const SCALE_ROWS: i64 = 1_000_000;

/// Fills the registrations table with `rows` live rows in one transaction, in SQL through
/// the server's own schema (random keys, as real ones are; responses of a real one's size);
/// returns the seconds it took. The server is idle meanwhile, and WAL mode lets this second
/// writer in.
fn bulk_load(target: &Target, rows: i64) -> f64 {
    let db = target.db.as_ref().expect("scale needs the database (--database for a --url server)");
    let conn = rusqlite::Connection::open(db).expect("open the database");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy timeout");
    let started = Instant::now();
    conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO registrations (authorization_pub, account_pub, type, recurrent, credit_amount, credit_account,
           authorization_sig, short_subject, qr_reference, response, created_us, last_change_us, expiration_s, used_us)
         SELECT randomblob(32), randomblob(32), 'reserve', 0, 'X:10', 'payto://scale/' || i, zeroblob(64),
           'SCALE-' || i, NULL, printf('%.500c', 'x'), 0, 0, 9223372036854775807, NULL FROM n",
        [rows],
    )
    .expect("bulk insert");
    conn.execute_batch("COMMIT").expect("commit");
    started.elapsed().as_secs_f64()
}

/// Median latency of the operator's list, first page (oldest rows) and last page (newest
/// rows, `limit=-20`), and their ratio.
async fn listing_latency(client: &reqwest::Client, target: &Target) -> Value {
    let token = target.spawned.as_ref().map(|s| s.token.clone()).or_else(|| target.token.clone());
    let token = token.expect("scale needs the operator token (--token for a --url server)");
    let mut medians = Vec::new();
    for query in ["limit=20", "limit=-20"] {
        let mut times = Vec::new();
        for _ in 0..31 {
            let started = Instant::now();
            let answer = client
                .get(target.endpoint(&format!("private/registrations?{query}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("GET /private/registrations");
            assert_eq!(answer.status(), 200, "GET /private/registrations?{query}");
            answer.bytes().await.expect("listing body");
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[times.len() / 2].as_secs_f64() * 1000.0);
    }
    let (first, last) = (medians[0], medians[1]);
    json!({"first_page": round(first, 3), "last_page": round(last, 3), "ratio": round(last / first, 3)})
}

/// Sets `met` (every target met, nothing failed, stored rows as answered) and
/// adds the server's last log lines when something failed.
/// `journal`: registrations/s of a development server with the journal of requests on,
/// against one with it off (see the module's doc).
async fn journal_scenario(ctx: &mut Context) -> Value {
    assert!(ctx.options.url.is_none(), "journal starts its own two servers and cannot use --url");
    let off = ctx.target(&["--dev".to_owned(), "--journal-size".to_owned(), "0".to_owned()]);
    let on = ctx.target(&["--dev".to_owned()]);
    let clients = ctx.options.clients;
    let path = "taler-prepared-transfer/registration";
    let currency = currency(&ctx.client, &on).await;
    let make = |n: usize| registration_bodies(n, &currency, &ctx.options.credit_account);
    for target in [&off, &on] {
        drive(&ctx.client, &target.endpoint(path), make(clients), clients, 200, None, PHASE_LIMIT).await;
    }
    const ROUNDS: usize = 4;
    let per_round = (ctx.options.requests / ROUNDS).max(clients);
    let (mut ok, mut failed, mut secs) = ([0usize; 2], 0, [0f64; 2]);
    let mut latencies: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, target) in [&off, &on].into_iter().enumerate() {
            let load =
                drive(&ctx.client, &target.endpoint(path), make(per_round), clients, 200, None, PHASE_LIMIT)
                    .await;
            ok[i] += load.ok;
            failed += load.failed;
            secs[i] += load.elapsed.as_secs_f64();
            latencies[i].extend(load.latencies);
        }
    }
    let throughput = [ok[0] as f64 / secs[0], ok[1] as f64 / secs[1]];
    let p99 = |l: &mut Vec<Duration>| {
        l.sort_unstable();
        round(percentile_ms(l, 0.99), 2)
    };
    let (p99_off, p99_on) = (p99(&mut latencies[0]), p99(&mut latencies[1]));
    let ratio = throughput[1] / throughput[0];
    let journal: Value = ctx
        .client
        .get(on.endpoint("private/requests?limit=10000"))
        .bearer_auth(on.spawned.as_ref().map(|s| s.token.clone()).unwrap_or_default())
        .send()
        .await
        .expect("GET /private/requests")
        .json()
        .await
        .expect("the journal's JSON");
    let held = journal["requests"].as_array().map_or(0, Vec::len);
    finish(
        json!({
            "scenario": "journal",
            "clients": clients,
            "ok": ok[0] + ok[1],
            "failed": failed,
            "unit": "registrations/s",
            "throughput_journal_off": round(throughput[0], 1),
            "throughput_journal_on": round(throughput[1], 1),
            "latency_ms": {"p99_journal_off": p99_off, "p99_journal_on": p99_on},
            "journal_entries_held": held,
            "ratio": round(ratio, 3),
            "targets": [target_json("registrations/s journal on / off >= 0.8", ratio, 0.8, ratio >= 0.8)],
        }),
        &on,
    )
}

fn finish(mut line: Value, target: &Target) -> Value {
    let targets_met =
        line["targets"].as_array().map(|t| t.iter().all(|t| t["met"] == json!(true))).unwrap_or(false);
    let clean = line["failed"].as_u64() == Some(0) && line["rows_checked"] != json!(false);
    line["met"] = json!(targets_met && clean);
    if !clean {
        line["server_log_tail"] = json!(target.describe_failure());
    }
    line
}

async fn upload_scenario(ctx: &mut Context) -> Value {
    let body = upload_body(ctx.options.upload_mib, 1);
    let party = EddsaPrivateKey::generate().expect("randomness");
    let dir = tempfile::tempdir().expect("temporary directory");
    let disk_dir = ctx.options.database.as_ref().and_then(|d| d.parent()).unwrap_or(dir.path()).to_owned();
    // References first, while no server runs (SHA-512 once more after the upload).
    let sha512_before = reference_sha512(ctx.ticks_per_s);
    let disk = reference_disk(&disk_dir);
    let target = ctx.target(&[format!("--extern-key={}=loadgen", party.public_key())]);
    ensure_extern_key(&ctx.client, &target, &party).await;
    let cpu_start = target.cpu_snapshot(ctx.cpu_source());
    let outcome = upload(&ctx.client, &target, &party, &body).await;
    let cpu = target.cpu_since(cpu_start.as_ref(), ctx.cpu_source());
    let sha512 = Reference::bracket(sha512_before, reference_sha512(ctx.ticks_per_s));
    let sha = sha512.per_s;
    let (secs, failed, failures) = match &outcome {
        Ok(d) => (d.as_secs_f64(), 0, Vec::new()),
        Err(e) => (f64::NAN, 1, vec![e.clone()]),
    };
    let mbps = body.size as f64 / 1e6 / secs;
    let reference = sha.min(disk);
    let ratio = mbps / reference;
    let sha_ratio = mbps / sha;
    let cpu_ratio = match (&cpu, &outcome) {
        (Some(c), Ok(_)) => c.ratio(None, body.size as f64 / 1e6, sha512.cpu_us),
        _ => f64::NAN,
    };
    let rss = target.peak_rss_mib();
    let rss_parts = target.rss_parts_mib();
    if outcome.is_ok() {
        ctx.upload_secs = Some(secs);
    }
    finish(
        json!({
            "scenario": "upload",
            "ok": usize::from(outcome.is_ok()),
            "failed": failed,
            "first_failures": failures,
            "size_mib": body.size as f64 / MIB as f64,
            "seconds": round(secs, 3),
            "throughput": round(mbps, 1),
            "unit": "MB/s",
            "server_peak_rss_mib": rss.map(|m| round(m, 1)),
            "server_rss_at_end_mib": rss_parts,
            "reference": {
                "what": "min(SHA-512 one core, fsync'd sequential write in the database's directory)",
                "value": round(reference, 1), "unit": "MB/s",
                "sha512_mbps": round(sha, 1), "disk_mbps": round(disk, 1),
                "sha512_runs_cpu_us_per_mb": sha512.runs_json(),
            },
            "ratio": round(ratio, 3),
            "cpu": cpu.filter(|_| outcome.is_ok()).map(|c| c.json(
                "MB uploaded",
                body.size as f64 / 1e6,
                "SHA-512 of one MB (CPU time, one core, the server's sha2)",
                Some(sha512.cpu_us),
            )),
            "rows_checked": upload_stored(&target, &body),
            "sha512_ratio": round(sha_ratio, 3),
            // Issue 13's targets: against SHA-512 alone (the disk is reported beside it).
            "targets": [
                target_json("MB/s >= 0.5 x SHA-512 MB/s (ratio)", sha_ratio, 0.5, sha_ratio >= 0.5),
                target_json("server CPU per MB / SHA-512 CPU per MB <= 2.0", cpu_ratio, 2.0, cpu_ratio <= 2.0),
                target_json("server peak RSS MiB <= 32", rss.unwrap_or(f64::NAN), 32.0, rss.is_some_and(|r| r <= 32.0)),
            ],
        }),
        &target,
    )
}

async fn mixed_scenario(ctx: &mut Context) -> Value {
    let (Some(base_p99), Some(base_throughput), Some(base_upload)) =
        (ctx.registration_p99_ms, ctx.registration_throughput, ctx.upload_secs)
    else {
        panic!("mixed needs the registration and upload figures of this run");
    };
    let ed25519_before = reference_ed25519(ctx.ticks_per_s);
    let bodies = [upload_body(ctx.options.upload_mib, 2), upload_body(ctx.options.upload_mib, 3)];
    let party = EddsaPrivateKey::generate().expect("randomness");
    let target = ctx.target(&[format!("--extern-key={}=loadgen", party.public_key())]);
    ensure_extern_key(&ctx.client, &target, &party).await;
    let currency = currency(&ctx.client, &target).await;
    let clients = ctx.options.clients;
    let path = target.endpoint("taler-prepared-transfer/registration");
    let rows_before = target.count("SELECT count(*) FROM registrations");
    // Enough fresh registrations to last well past both uploads at the
    // scenario-1 rate; the load stops when the uploads are done.
    let n = ((base_throughput * base_upload * 2.5) as usize).clamp(1_000, 150_000);
    let warmup = drive(
        &ctx.client,
        &path,
        registration_bodies(clients, &currency, &ctx.options.credit_account),
        clients,
        200,
        None,
        PHASE_LIMIT,
    )
    .await;
    let registrations = registration_bodies(n, &currency, &ctx.options.credit_account);

    let cpu_start = target.cpu_snapshot(ctx.cpu_source());
    let stop = Arc::new(AtomicBool::new(false));
    let uploads = {
        let client = ctx.client.clone();
        let (target_url, party) = (target.url.clone(), party.clone());
        let bodies: Vec<UploadBody> = bodies
            .iter()
            .map(|b| UploadBody { parts: b.parts.clone(), h_body: b.h_body, size: b.size })
            .collect();
        let stop = stop.clone();
        tokio::spawn(async move {
            let t = Target { url: target_url, token: None, db: None, pid: None, spawned: None };
            let results =
                futures_util::future::join_all(bodies.iter().map(|b| upload(&client, &t, &party, b))).await;
            stop.store(true, Ordering::Relaxed);
            results
        })
    };
    let mut load =
        drive(&ctx.client, &path, registrations, clients, 200, Some(stop.clone()), MIXED_LIMIT).await;
    // False when the registration load ended (bodies used up, or the time
    // limit) while an upload was still streaming: then the p99 does not cover
    // the whole upload.
    let registrations_covered_uploads = uploads.is_finished();
    let results = uploads.await.expect("upload task");
    let cpu = target.cpu_since(cpu_start.as_ref(), ctx.cpu_source());
    let ed25519 = Reference::bracket(ed25519_before, reference_ed25519(ctx.ticks_per_s));

    let rows_after = target.count("SELECT count(*) FROM registrations");
    let uploads_stored: Vec<Option<bool>> = bodies.iter().map(|b| upload_stored(&target, b)).collect();
    let rows_checked = match (rows_before, rows_after) {
        (Some(b), Some(a)) => {
            json!((a - b) as usize == warmup.ok + load.ok && uploads_stored.iter().all(|s| *s == Some(true)))
        }
        _ => Value::Null,
    };
    let latency = load.latency_json();
    let p99 = latency["p99"].as_f64().unwrap_or(f64::NAN);
    let upload_secs: Vec<f64> =
        results.iter().map(|r| r.as_ref().map_or(f64::NAN, Duration::as_secs_f64)).collect();
    let slowest = upload_secs.iter().copied().fold(0.0, f64::max);
    let upload_failures: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().cloned()).collect();
    let failed = load.failed + warmup.failed + upload_failures.len();
    let throughput = load.throughput();
    finish(
        json!({
            "scenario": "mixed",
            "clients": clients,
            "ok": load.ok,
            "failed": failed,
            "first_failures": ([warmup.first_failures, load.first_failures, upload_failures].concat()),
            "seconds": round(load.elapsed.as_secs_f64(), 3),
            "throughput": round(throughput, 1),
            "unit": "registrations/s",
            "latency_ms": latency,
            "upload_seconds": upload_secs.iter().map(|s| round(*s, 3)).collect::<Vec<_>>(),
            "upload_mbps_each": upload_secs.iter().map(|s| round(bodies[0].size as f64 / 1e6 / s, 1)).collect::<Vec<_>>(),
            "registrations_covered_uploads": registrations_covered_uploads,
            "server_peak_rss_mib": target.peak_rss_mib().map(|m| round(m, 1)),
            "reference": {"what": "this run's registration p99 (ms) and upload time (s)", "registration_p99_ms": base_p99, "upload_seconds": round(base_upload, 3)},
            "ratio": round(p99 / base_p99, 3),
            "upload_ratio": round(slowest / base_upload, 3),
            // Per registration, but over everything the server did meanwhile: the uploads too.
            "cpu": cpu.map(|c| c.json(
                "registration (with both uploads' CPU in the same phase)",
                load.ok as f64,
                ED25519_CPU,
                Some(ed25519.cpu_us),
            )),
            "rows_checked": rows_checked,
            "targets": [
                target_json("registration p99 / scenario-1 p99 <= 2", p99 / base_p99, 2.0, p99 <= 2.0 * base_p99),
                target_json("slowest upload / scenario-3 time <= 1.5", slowest / base_upload, 1.5, slowest <= 1.5 * base_upload),
            ],
        }),
        &target,
    )
}

/// One raw `GET /config` (no client pool, `Connection: close`): the status line.
fn get_config_status(url: &str) -> std::io::Result<String> {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /config HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned())
}

fn startup_scenario(ctx: &Context) -> Value {
    let bin = ctx.bin.as_ref().expect("startup needs a server binary to start");
    let mut times = Vec::new();
    let mut failures = Vec::new();
    // The server's CPU from its start to the first answer, summed over the starts.
    let mut cpu: Option<CpuUse> = None;
    for _ in 0..ctx.options.starts {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        let start = Instant::now();
        let outcome = TestServer::try_start_with(bin, dir, &[], Some(ctx.client.clone()))
            .map_err(|log| format!("no URL: {log}"))
            .and_then(|server| {
                // The URL line is printed once the socket is bound: the first GET should succeed.
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    match get_config_status(&server.url) {
                        Ok(line) if line.contains(" 200 ") => break,
                        Ok(line) if Instant::now() > deadline => {
                            return Err(format!("{line}: {}", server.log()));
                        }
                        Err(e) if Instant::now() > deadline => return Err(format!("{e}: {}", server.log())),
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                let took = start.elapsed();
                if let Some(end) = cpu_snapshot(server.pid(), CpuSource::Schedstat) {
                    let this = CpuUse::between(None, &end, CpuSource::Schedstat);
                    match &mut cpu {
                        None => cpu = Some(this),
                        Some(sum) => sum.add(&this),
                    }
                }
                Ok(took)
            });
        match outcome {
            Ok(t) => times.push(t),
            Err(e) => failures.push(e.replace('\n', " | ")),
        }
    }
    times.sort_unstable();
    let median = percentile_ms(&times, 0.5);
    let line = json!({
        "scenario": "startup",
        "starts": ctx.options.starts,
        "ok": times.len(),
        "failed": failures.len(),
        "first_failures": failures.into_iter().take(3).collect::<Vec<_>>(),
        "startup_ms": {"min": round(percentile_ms(&times, 0.0), 2), "median": round(median, 2), "max": round(percentile_ms(&times, 1.0), 2)},
        "reference": {"what": "target", "value": 50.0, "unit": "ms"},
        "ratio": round(median / 50.0, 3),
        "cpu": cpu.map(|c| c.json("start (process start to the first answer)", times.len() as f64, "none", None)),
        "targets": [target_json("median ms from spawn to first 200 of GET /config <= 50", median, 50.0, median <= 50.0)],
    });
    finish(line, &Target { url: String::new(), token: None, db: None, pid: None, spawned: None })
}

/// A scenario's line as a Markdown table for people: throughput, latency, and the server's CPU
/// per operation (whole process and per thread group), each with its multiple of the reference.
fn table(line: &Value) -> String {
    let num = |v: &Value, digits: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.digits$}"));
    let mut rows: Vec<[String; 3]> = Vec::new();
    if let Some(throughput) = line["throughput"].as_f64() {
        let reference = &line["reference"];
        let against = match reference["value"].as_f64() {
            Some(v) => {
                format!("{} ({v:.1} {})", num(&line["ratio"], 3), reference["unit"].as_str().unwrap_or(""))
            }
            None => String::new(),
        };
        rows.push([
            "throughput".into(),
            format!("{throughput:.1} {}", line["unit"].as_str().unwrap_or("")),
            against,
        ]);
    }
    let latency = &line["latency_ms"];
    if latency.is_object() {
        rows.push([
            "latency p50 / p99".into(),
            format!("{} / {} ms", num(&latency["p50"], 2), num(&latency["p99"], 2)),
            String::new(),
        ]);
    }
    if let Some(seconds) = line["seconds"].as_f64() {
        rows.push(["measured phase".into(), format!("{seconds:.3} s"), String::new()]);
    }
    if line["preloaded"].is_object() {
        rows.push([
            "rows loaded before".into(),
            format!("{} in {} s", line["preloaded"]["rows"], num(&line["preloaded"]["seconds"], 1)),
            String::new(),
        ]);
    }
    let listing = &line["listing_ms"];
    if listing.is_object() {
        rows.push([
            "listing median, first / last page".into(),
            format!("{} / {} ms", num(&listing["first_page"], 2), num(&listing["last_page"], 2)),
            format!("{} (last / first)", num(&listing["ratio"], 3)),
        ]);
    }
    if line["startup_ms"].is_object() {
        rows.push([
            "startup median".into(),
            format!("{} ms", num(&line["startup_ms"]["median"], 2)),
            format!("{} (of the 50 ms limit)", num(&line["ratio"], 3)),
        ]);
    }
    let cpu = &line["cpu"];
    if cpu.is_object() {
        let per = cpu["per"].as_str().unwrap_or("operation");
        rows.push([
            format!("server CPU per {per}"),
            format!("{} µs", num(&cpu["server"]["us"], 2)),
            num(&cpu["server"]["ratio"], 3),
        ]);
        for group in Group::ALL {
            let g = &cpu[group.key()];
            // The main and other threads only when they did something.
            let idle = g["us"].as_f64().is_none_or(|us| us == 0.0);
            if matches!(group, Group::Main | Group::Other) && idle {
                continue;
            }
            rows.push([
                format!("  {} ({})", group.label(), g["threads"]),
                format!("{} µs", num(&g["us"], 2)),
                num(&g["ratio"], 3),
            ]);
        }
        let unattributed = &cpu["unattributed"];
        if unattributed["us"].as_f64().is_some_and(|us| us != 0.0) {
            rows.push([
                "  unattributed (exited threads, rounding)".into(),
                format!("{} µs", num(&unattributed["us"], 2)),
                num(&unattributed["ratio"], 3),
            ]);
        }
        let operations = cpu["operations"].as_f64().unwrap_or(f64::NAN);
        rows.push([
            "server CPU over the phase".into(),
            format!("{} s over {operations} operations", num(&cpu["server_cpu_seconds"], 2)),
            String::new(),
        ]);
        let reference = &cpu["reference"];
        if reference["us"].is_number() {
            rows.push([
                format!("reference: {}", reference["what"].as_str().unwrap_or("")),
                format!("{} µs", num(&reference["us"], 3)),
                "1".into(),
            ]);
        }
    } else {
        rows.push(["server CPU".into(), "unknown (no server process id)".into(), String::new()]);
    }
    let mut out = format!(
        "\n{} ({} ok, {} failed, met: {})\n\n| figure | value | x reference |\n|---|---:|---:|\n",
        line["scenario"].as_str().unwrap_or("?"),
        line["ok"],
        line["failed"],
        line["met"]
    );
    for [what, value, ratio] in rows {
        out.push_str(&format!("| {what} | {value} | {ratio} |\n"));
    }
    if let Some(targets) = line["targets"].as_array().filter(|t| !t.is_empty()) {
        out.push_str("\n| target | value | met |\n|---|---:|---|\n");
        for t in targets {
            let met = if t["met"] == json!(true) { "yes" } else { "no" };
            out.push_str(&format!(
                "| {} | {} | {met} |\n",
                t["what"].as_str().unwrap_or("?"),
                num(&t["value"], 2)
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- main

fn loopback_only(url: &str) {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .map(|authority| authority.rsplit_once(':').map_or(authority, |(h, _)| h))
        .expect("--url must be http://HOST:PORT/");
    let local = host == "localhost"
        || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    assert!(local, "--url must be a loopback address (this is a load generator)");
}

fn main() {
    let options = Options::parse();
    if let Some(url) = &options.url {
        loopback_only(url);
    }
    let mut scenarios: Vec<String> = Vec::new();
    for s in &options.scenarios {
        match s.as_str() {
            "all" => {
                scenarios.extend(["registration", "auditors", "upload", "mixed", "startup"].map(String::from))
            }
            "registration" | "auditors" | "upload" | "mixed" | "startup" | "scale" | "journal"
            | "longpoll" | "replicate" => scenarios.push(s.clone()),
            other => {
                panic!(
                    "unknown scenario {other}: registration, auditors, upload, mixed, startup, scale, journal, longpoll, replicate or all"
                )
            }
        }
    }
    // `scale` is judged against scenario 1 of the same run.
    if let Some(i) = scenarios.iter().position(|s| s == "scale")
        && !scenarios[..i].iter().any(|s| s == "registration")
    {
        scenarios.insert(i, "registration".to_owned());
    }
    // `mixed` is judged against scenarios 1 and 3 of the same run.
    if let Some(i) = scenarios.iter().position(|s| s == "mixed") {
        for needed in ["upload", "registration"] {
            if !scenarios[..i].iter().any(|s| s == needed) {
                scenarios.insert(0, needed.to_owned());
            }
        }
    }
    if options.url.is_some() && scenarios.iter().any(|s| s == "startup") {
        panic!("startup measures starting the server and cannot use --url");
    }
    let bin = options.url.is_none().then(|| server_binary(&options));
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(options.clients.max(4))
        .build()
        .expect("HTTP client");
    let mut ctx = Context {
        options,
        bin,
        ticks_per_s: clock_ticks_per_s(),
        client,
        registration_p99_ms: None,
        registration_throughput: None,
        upload_secs: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut all_met = true;
    for scenario in scenarios {
        let line = match scenario.as_str() {
            "registration" | "auditors" | "scale" => runtime.block_on(request_scenario(&mut ctx, &scenario)),
            "upload" => runtime.block_on(upload_scenario(&mut ctx)),
            "mixed" => runtime.block_on(mixed_scenario(&mut ctx)),
            "journal" => runtime.block_on(journal_scenario(&mut ctx)),
            "longpoll" => runtime.block_on(longpoll::longpoll_scenario(&mut ctx)),
            "replicate" => runtime.block_on(replicate::replicate_scenario(&mut ctx)),
            _ => startup_scenario(&ctx),
        };
        all_met &= line["met"] == json!(true);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").expect("stdout");
        out.flush().expect("stdout");
        eprint!("{}", if scenario == "longpoll" { longpoll::longpoll_table(&line) } else { table(&line) });
    }
    if !all_met {
        eprintln!("loadgen: at least one target was missed or a request failed (see \"met\")");
    }
}
