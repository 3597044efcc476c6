//! `loadgen longpoll` (issue 19; the module doc of `examples/loadgen.rs` says what it measures):
//! 1000 Wire Gateway long polls waiting over 10 accounts, woken account by account.

use super::*;

/// Accounts the `longpoll` scenario spreads its polls over (each its own Wire Gateway).
const LONGPOLL_ACCOUNTS: usize = 10;
/// Commits (each waking one account's polls) the wake-up figures are taken over.
const LONGPOLL_ROUNDS: usize = 200;
/// How long the server's idle CPU is watched, with no poll and with every poll waiting.
const LONGPOLL_IDLE: Duration = Duration::from_secs(5);
/// How long a poll asks to wait (the server's cap): longer than the whole scenario.
const LONGPOLL_TIMEOUT_MS: u64 = 300_000;

/// The name and full payto URI of the scenario's account `i` (the first is the server's default,
/// so that registrations name it).
fn longpoll_account(i: usize) -> (String, String) {
    if i == 0 {
        ("exchange".to_owned(), DEFAULT_ACCOUNT.to_owned())
    } else {
        (format!("lp{i}"), format!("payto://x-taler-bank/bank.example/lp{i}?receiver-name=Exchange%20{i}"))
    }
}

/// The soft and hard limits on open files of a process (`self` or a pid), from `/proc/.../limits`.
fn open_files_limits(process: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{process}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |f: Option<&str>| f.map(|f| if f == "unlimited" { u64::MAX } else { f.parse().unwrap_or(0) });
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Makes sure this process (and so the server it starts, which inherits the limit) may hold
/// `needed` open files: each waiting poll is a socket on both sides. A soft limit below it is
/// raised up to the hard limit with util-linux's `prlimit` (no `unsafe` `setrlimit` here);
/// where that cannot be done, the message says which `ulimit -n` to run first.
fn ensure_open_files(needed: u64) {
    let Some((soft, hard)) = open_files_limits("self") else {
        eprintln!("loadgen: WARNING: cannot read /proc/self/limits; {needed} open files are needed");
        return;
    };
    if soft >= needed {
        return;
    }
    let hint = format!("run `ulimit -n {needed}` in the shell first (soft limit {soft}, hard {hard})");
    assert!(hard >= needed, "longpoll needs {needed} open files: {hint}");
    let raised = Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), &format!("--nofile={needed}:")])
        .status()
        .is_ok_and(|s| s.success());
    let now = open_files_limits("self").map_or(0, |l| l.0);
    assert!(raised && now >= needed, "longpoll needs {needed} open files and prlimit failed: {hint}");
    eprintln!("loadgen: raised the soft limit on open files from {soft} to {now} (prlimit)");
}

/// Current resident set (`VmRSS`) of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The server's `taler_lite_long_polls_waiting` gauge.
async fn polls_waiting(client: &reqwest::Client, target: &Target, token: &str) -> Option<u64> {
    let text =
        client.get(target.endpoint("metrics")).bearer_auth(token).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("taler_lite_long_polls_waiting "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the server counts `n` waiting polls; false if that did not happen within `limit`.
async fn until_waiting(
    client: &reqwest::Client,
    target: &Target,
    token: &str,
    n: u64,
    limit: Duration,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if polls_waiting(client, target, token).await == Some(n) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// The server's CPU over `span` of idleness (no request from here), as % of one core.
async fn idle_cpu_percent(target: &Target, source: CpuSource, span: Duration) -> Option<f64> {
    let start = target.cpu_snapshot(source)?;
    let began = Instant::now();
    tokio::time::sleep(span).await;
    let used = target.cpu_since(Some(&start), source)?;
    Some(used.process as f64 / 1e9 / began.elapsed().as_secs_f64() * 100.0)
}

/// What a poll saw: the newest row of a 200 (with when it arrived), or a failure.
enum PollEvent {
    Answered { account: usize, row_id: i64, at: Instant },
    Failed(String),
}

/// One long-polling client, as wirewatch runs it: asks for rows after the last one it saw,
/// waits, and asks again after every answer. Even-numbered pollers use the deprecated
/// parameters (what the exchange's C client sends), odd ones the new.
async fn poller(
    client: reqwest::Client,
    url: String,
    token: String,
    account: usize,
    deprecated: bool,
    events: tokio::sync::mpsc::UnboundedSender<PollEvent>,
) {
    let mut offset = 0i64;
    loop {
        let query = if deprecated {
            format!("?delta=1024&start={offset}&long_poll_ms={LONGPOLL_TIMEOUT_MS}")
        } else {
            format!("?limit=1024&offset={offset}&timeout_ms={LONGPOLL_TIMEOUT_MS}")
        };
        let answer = client.get(format!("{url}{query}")).bearer_auth(&token).send().await;
        let event = match answer {
            Ok(response) if response.status() == 204 => continue,
            Ok(response) if response.status() == 200 => {
                let at = Instant::now();
                match response.json::<Value>().await {
                    Ok(history) => {
                        let newest = history["incoming_transactions"]
                            .as_array()
                            .and_then(|rows| rows.iter().filter_map(|r| r["row_id"].as_i64()).max());
                        match newest {
                            Some(row_id) => {
                                offset = row_id;
                                PollEvent::Answered { account, row_id, at }
                            }
                            None => PollEvent::Failed(format!("200 without rows: {history}")),
                        }
                    }
                    Err(e) => PollEvent::Failed(format!("history body: {e}")),
                }
            }
            Ok(response) => {
                let status = response.status();
                PollEvent::Failed(format!("{status}: {}", response.text().await.unwrap_or_default()))
            }
            Err(e) => PollEvent::Failed(format!("poll: {e}")),
        };
        let failed = matches!(event, PollEvent::Failed(_));
        if events.send(event).is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Registrations/s of `n` fresh registrations over `clients` connections.
async fn registration_rate(ctx: &Context, target: &Target, currency: &str, n: usize) -> Load {
    let bodies = registration_bodies(n, currency, DEFAULT_ACCOUNT);
    let url = target.endpoint("taler-prepared-transfer/registration");
    drive(&ctx.client, &url, bodies, ctx.options.clients, 200, None, PHASE_LIMIT).await
}

/// `longpoll`: `--polls` waiting history requests spread over 10 accounts; each commit wakes its
/// account's. See the module's doc.
pub async fn longpoll_scenario(ctx: &mut Context) -> Value {
    assert!(
        ctx.options.url.is_none(),
        "longpoll starts its own server (with 10 accounts) and cannot use --url"
    );
    let polls = ctx.options.polls;
    let needed = (polls + ctx.options.clients + 256) as u64;
    ensure_open_files(needed);
    let mut args = Vec::new();
    for i in 0..LONGPOLL_ACCOUNTS {
        let (name, payto) = longpoll_account(i);
        args.extend(["--credit-account".to_owned(), format!("{name}={payto}")]);
    }
    let target = ctx.target(&args);
    let pid = target.pid.expect("a spawned server's pid");
    let token = target.spawned.as_ref().map(|s| s.token.clone()).expect("the operator token");
    if let Some((soft, _)) = open_files_limits(&pid.to_string()) {
        assert!(soft >= needed, "the server may open only {soft} files; {needed} are needed");
    }
    let currency = currency(&ctx.client, &target).await;
    let source = ctx.cpu_source();
    let mut failures: Vec<String> = Vec::new();

    // No poll: warm-up, the idle figures, then the registration rate.
    let n = (ctx.options.requests / 4).max(ctx.options.clients);
    let warmup = registration_rate(ctx, &target, &currency, ctx.options.clients * 4).await;
    let cpu_none = idle_cpu_percent(&target, source, LONGPOLL_IDLE).await;
    let mut without = registration_rate(ctx, &target, &currency, n).await;
    // After the registrations without polls, so that what they grew (SQLite's cache) is not
    // counted as the polls'.
    let rss_none = rss_mib(pid);

    // The polls, each on its own connection.
    let poll_client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(polls + 16)
        .build()
        .expect("HTTP client");
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let pollers: Vec<_> = (0..polls)
        .map(|i| {
            let account = i % LONGPOLL_ACCOUNTS;
            let url = target.endpoint(&format!(
                "accounts/{}/taler-wire-gateway/history/incoming",
                longpoll_account(account).0
            ));
            tokio::spawn(poller(
                poll_client.clone(),
                url,
                token.clone(),
                account,
                i % 4 < 2,
                events_tx.clone(),
            ))
        })
        .collect();
    drop(events_tx);
    let started = Instant::now();
    let all_waiting =
        until_waiting(&ctx.client, &target, &token, polls as u64, Duration::from_secs(60)).await;
    let parking_s = started.elapsed().as_secs_f64();
    if !all_waiting {
        failures.push(format!("not all {polls} polls were waiting after 60 s"));
    }
    let rss_waiting = rss_mib(pid);
    let cpu_waiting = idle_cpu_percent(&target, source, LONGPOLL_IDLE).await;
    let mut with = registration_rate(ctx, &target, &currency, n).await;
    let still_waiting = polls_waiting(&ctx.client, &target, &token).await;
    if still_waiting != Some(polls as u64) {
        failures.push(format!("{still_waiting:?} polls waiting after the registrations, not {polls}"));
    }

    // The wake-ups: one credit per round, to each account in turn.
    let mut from_answer = Vec::new();
    let mut from_request = Vec::new();
    let mut stray = 0usize;
    let per_account = |a: usize| (0..polls).filter(|i| i % LONGPOLL_ACCOUNTS == a).count();
    for round in 0..LONGPOLL_ROUNDS {
        let account = round % LONGPOLL_ACCOUNTS;
        if !until_waiting(&ctx.client, &target, &token, polls as u64, Duration::from_secs(30)).await {
            failures.push(format!("round {round}: the woken polls did not all wait again"));
            break;
        }
        let body = json!({
            "amount": format!("{currency}:1"),
            "reserve_pub": EddsaPrivateKey::generate().expect("randomness").public_key().to_string(),
            "debit_account": CUSTOMER_PAYTO,
        });
        let path = format!("accounts/{}/taler-wire-gateway/admin/add-incoming", longpoll_account(account).0);
        let sent = Instant::now();
        let answer = ctx.client.post(target.endpoint(&path)).bearer_auth(&token).json(&body).send().await;
        let row_id = match answer {
            Ok(r) if r.status() == 200 => r.json::<Value>().await.ok().and_then(|v| v["row_id"].as_i64()),
            Ok(r) => {
                failures.push(format!("add-incoming: {}", r.status()));
                None
            }
            Err(e) => {
                failures.push(format!("add-incoming: {e}"));
                None
            }
        };
        let committed = Instant::now();
        let Some(row_id) = row_id else { break };
        let mut woken = 0;
        let mut last = committed;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while woken < per_account(account) {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(PollEvent::Answered { account: a, row_id: r, at }))
                    if a == account && r == row_id =>
                {
                    woken += 1;
                    last = last.max(at);
                }
                Ok(Some(PollEvent::Answered { .. })) => stray += 1,
                Ok(Some(PollEvent::Failed(e))) => failures.push(e),
                Ok(None) | Err(_) => {
                    failures.push(format!("round {round}: {woken} of {} polls woken", per_account(account)));
                    break;
                }
            }
        }
        from_answer.push(last.saturating_duration_since(committed));
        from_request.push(last.saturating_duration_since(sent));
    }
    // Whatever else came: polls of other accounts must not have answered.
    while let Ok(event) = events.try_recv() {
        match event {
            PollEvent::Answered { .. } => stray += 1,
            PollEvent::Failed(e) => failures.push(e),
        }
    }
    for p in &pollers {
        p.abort();
    }
    from_answer.sort_unstable();
    from_request.sort_unstable();
    let ms = |v: &[Duration], p: f64| round(percentile_ms(v, p), 2);
    let (rate_none, rate_waiting) = (without.throughput(), with.throughput());
    let ratio = rate_waiting / rate_none;
    let per_poll_kib = match (rss_none, rss_waiting) {
        (Some(a), Some(b)) => Some(round((b - a) * 1024.0 / polls as f64, 2)),
        _ => None,
    };
    let cpu_w = cpu_waiting.unwrap_or(f64::NAN);
    let p99 = ms(&from_answer, 0.99);
    let failed = failures.len() + stray + warmup.failed + without.failed + with.failed;
    failures.extend(warmup.first_failures);
    failures.append(&mut without.first_failures);
    failures.append(&mut with.first_failures);
    failures.truncate(5);
    finish(
        json!({
            "scenario": "longpoll",
            "polls": polls,
            "accounts": LONGPOLL_ACCOUNTS,
            "polls_per_account": polls / LONGPOLL_ACCOUNTS,
            "rounds": from_answer.len(),
            "ok": from_answer.len(),
            "failed": failed,
            "stray_answers": stray,
            "first_failures": failures,
            "parking_seconds": round(parking_s, 3),
            "wake_ms": {
                "what": "from the credit's 200 (add-incoming) to the last of its account's polls answered",
                "p50": ms(&from_answer, 0.5), "p99": p99, "max": ms(&from_answer, 1.0),
            },
            "wake_from_request_ms": {
                "what": "from sending the credit to the last of its account's polls answered",
                "p50": ms(&from_request, 0.5), "p99": ms(&from_request, 0.99), "max": ms(&from_request, 1.0),
            },
            "rss_mib": {
                "no_poll": rss_none.map(|m| round(m, 1)),
                "polls_waiting": rss_waiting.map(|m| round(m, 1)),
                "per_poll_kib": per_poll_kib,
            },
            "server_peak_rss_mib": target.peak_rss_mib().map(|m| round(m, 1)),
            "idle_cpu_percent_of_one_core": {
                "seconds": LONGPOLL_IDLE.as_secs(),
                "no_poll": cpu_none.map(|c| round(c, 2)),
                "polls_waiting": cpu_waiting.map(|c| round(c, 2)),
                "source": source.describe(),
            },
            "registrations": {
                "each_phase": n,
                "clients": ctx.options.clients,
                "no_poll_per_s": round(rate_none, 1),
                "polls_waiting_per_s": round(rate_waiting, 1),
                "p99_ms_no_poll": without.latency_json()["p99"],
                "p99_ms_polls_waiting": with.latency_json()["p99"],
            },
            "ratio": round(ratio, 3),
            "targets": [
                target_json("server CPU while the polls wait, % of one core <= 1", cpu_w, 1.0, cpu_w <= 1.0),
                target_json("registrations/s with the polls waiting / without >= 0.8", ratio, 0.8, ratio >= 0.8),
            ],
        }),
        &target,
    )
}

/// The `longpoll` line as a Markdown table for people.
pub fn longpoll_table(line: &Value) -> String {
    let num = |v: &Value, digits: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.digits$}"));
    let (w, r, c, rss) =
        (&line["wake_ms"], &line["registrations"], &line["idle_cpu_percent_of_one_core"], &line["rss_mib"]);
    let rows = [
        (
            format!(
                "wake-up: credit's 200 to the last of {} polls answered, p50 / p99 / max ({} rounds)",
                line["polls_per_account"], line["rounds"]
            ),
            format!("{} / {} / {} ms", num(&w["p50"], 2), num(&w["p99"], 2), num(&w["max"], 2)),
        ),
        (
            "wake-up from sending the credit, p50 / p99".to_owned(),
            format!(
                "{} / {} ms",
                num(&line["wake_from_request_ms"]["p50"], 2),
                num(&line["wake_from_request_ms"]["p99"], 2)
            ),
        ),
        (
            format!("server RSS, no poll / {} waiting", line["polls"]),
            format!(
                "{} / {} MiB ({} KiB per poll)",
                num(&rss["no_poll"], 1),
                num(&rss["polls_waiting"], 1),
                num(&rss["per_poll_kib"], 2)
            ),
        ),
        (
            format!("server CPU over {} s idle, no poll / polls waiting", c["seconds"]),
            format!("{} / {} % of one core", num(&c["no_poll"], 2), num(&c["polls_waiting"], 2)),
        ),
        (
            format!("registrations/s ({} clients), no poll / polls waiting", r["clients"]),
            format!(
                "{} / {} (ratio {})",
                num(&r["no_poll_per_s"], 1),
                num(&r["polls_waiting_per_s"], 1),
                num(&line["ratio"], 3)
            ),
        ),
        (
            "registration p99, no poll / polls waiting".to_owned(),
            format!("{} / {} ms", num(&r["p99_ms_no_poll"], 2), num(&r["p99_ms_polls_waiting"], 2)),
        ),
    ];
    let mut out = format!(
        "\nlongpoll ({} rounds, {} failed, {} stray answers, met: {})\n\n| figure | value |\n|---|---:|\n",
        line["rounds"], line["failed"], line["stray_answers"], line["met"]
    );
    for (what, value) in rows {
        out.push_str(&format!("| {what} | {value} |\n"));
    }
    out
}
