//! Failed authentications are answered at the budget's rate, however many connections
//! send them (README "Operator access"): 3000 wrong credentials (bearer on an operator
//! route, bearer on the Wire Gateway, the console's login form) over 1000 connections
//! from four client addresses get at most the global budget of answers a second, and
//! the right token is answered while they wait. Against the real binary over TCP.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::{read_answer, status_and_body};
use taler_lite::auth_failures::{GLOBAL_PER_S, PER_ADDRESS_PER_S};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

const CONNECTIONS: usize = 1000;
const PER_CONNECTION: usize = 3;
/// Source addresses of the flood (all loopback): the per-address budget is not the only bound.
const SOURCES: [[u8; 4]; 4] = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4], [127, 0, 0, 5]];

async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(source), 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends one request and reads its answer: the status and body, or `None` when the connection
/// ended first.
async fn exchange(s: &mut TcpStream, request: &[u8]) -> Option<(u16, String)> {
    s.write_all(request).await.ok()?;
    // No limit of its own: the flood's tasks are stopped from outside.
    let answer = read_answer(s, Duration::from_secs(3600)).await.ok()?;
    status_and_body(&answer).map(|(status, body)| (status, body.to_owned()))
}

/// The n-th wrong guess: bearer on an operator route, bearer on the Wire Gateway, or the
/// console's login form, in turn.
fn wrong_request(n: usize, host: &str) -> Vec<u8> {
    let guess = format!("{n:032}");
    match n % 3 {
        0 => format!(
            "GET /private/extern-keys HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {guess}\r\n\r\n"
        ),
        1 => format!(
            "GET /taler-wire-gateway/history/incoming HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {guess}\r\n\r\n"
        ),
        _ => {
            let form = format!("token={guess}");
            format!(
                "POST /console/login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                form.len()
            )
        }
    }
    .into_bytes()
}

/// The most answers in any one-second window of `times`.
fn busiest_second(times: &[Instant]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Latencies of `n` right-token requests on fresh connections from 127.0.0.1, one after another.
async fn right_token_latencies(server: SocketAddr, host: &str, token: &str, n: usize) -> Vec<Duration> {
    let request =
        format!("GET /private/extern-keys HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n");
    let mut took = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let mut s = connect_from([127, 0, 0, 1], server).await;
        let (status, body) =
            exchange(&mut s, request.as_bytes()).await.expect("an answer to the right token");
        assert_eq!(status, 200, "{body}");
        took.push(t0.elapsed());
    }
    took.sort();
    took
}

#[test]
fn wrong_credentials_are_answered_at_the_budget_rate_and_the_right_token_at_once() {
    let server = TestServer::start(&[]);
    let host = server.addr();
    let addr: SocketAddr = host.parse().unwrap();
    let token = server.token.clone();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let baseline = right_token_latencies(addr, &host, &token, 20).await;

        // The flood: 1000 connections, three wrong guesses each, one after another.
        let answers: Arc<Mutex<Vec<(usize, Instant, u16)>>> = Arc::default();
        let flood_started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CONNECTIONS {
            let (answers, host) = (answers.clone(), host.clone());
            let source_index = c % SOURCES.len();
            let mut s = connect_from(SOURCES[source_index], addr).await;
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_CONNECTION {
                    let n = c * PER_CONNECTION + i;
                    match exchange(&mut s, &wrong_request(n, &host)).await {
                        Some((status, body)) => {
                            assert!(status == 401, "a wrong guess got {status}: {body}");
                            answers.lock().unwrap().push((source_index, Instant::now(), status));
                        }
                        None => return,
                    }
                }
            }));
        }
        // The right token, while the flood waits for its answers.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during_started = Instant::now();
        let during = right_token_latencies(addr, &host, &token, 20).await;
        let during_ended = Instant::now();
        // Watch the flood's answers for a while, then leave.
        let window = Duration::from_secs(6);
        tokio::time::sleep((flood_started + window + Duration::from_secs(1)).saturating_duration_since(Instant::now()))
            .await;
        let seen = answers.lock().unwrap().clone();
        for t in tasks {
            t.abort();
        }
        let in_window: Vec<Instant> =
            seen.iter().map(|(_, at, _)| *at).filter(|at| at.duration_since(flood_started) <= window).collect();
        let budget = GLOBAL_PER_S as usize;
        let busiest = busiest_second(&in_window);
        let per_source: Vec<usize> = (0..SOURCES.len())
            .map(|i| {
                let times: Vec<Instant> = seen.iter().filter(|(s, _, _)| *s == i).map(|(_, at, _)| *at).collect();
                busiest_second(&times)
            })
            .collect();
        eprintln!(
            "auth budget: {} wrong guesses answered in {window:?} (budget {budget}/s overall, {PER_ADDRESS_PER_S}/s per address), \
             busiest second {busiest}, per source {per_source:?}; right token median/max before {:?}/{:?}, during {:?}/{:?}",
            in_window.len(),
            baseline[baseline.len() / 2],
            baseline[baseline.len() - 1],
            during[during.len() / 2],
            during[during.len() - 1],
        );
        // Without the budget, this flood had hundreds answered a second. The budget's arithmetic,
        // with slack for a busy machine (an answer delayed into the next second).
        let window_s = window.as_secs() as usize;
        assert!(in_window.len() <= budget * (window_s + 1), "{} answers in {window:?}", in_window.len());
        assert!(in_window.len() >= budget, "the flood was hardly answered at all: {}", in_window.len());
        assert!(busiest <= budget * 2, "{busiest} wrong guesses answered in one second");
        for n in &per_source {
            assert!(*n <= PER_ADDRESS_PER_S as usize * 2, "one address had {n} answers in one second");
        }
        // The right token waited for none of them: the thousands queued would take minutes at
        // the budget. Typically, compared with itself before the flood (medians of 20 in this
        // run, so one slow sample on a shared machine decides nothing); at most one second's
        // worth of the budget, however fast it was before, since a ratio of two sub-millisecond
        // figures means nothing.
        let (before, while_flooded) = (baseline[baseline.len() / 2], during[during.len() / 2]);
        assert!(
            while_flooded < Duration::from_secs(1).max(before * 20),
            "the right token took {while_flooded:?} (median) during the flood, {before:?} before"
        );
        // And none of the 20 waited in the queue: all of them together were answered while the
        // budget let through fewer wrong guesses than two seconds' worth. Counted in the server's
        // own budget, so a slow machine, which slows both, does not decide it.
        let meanwhile =
            seen.iter().filter(|(_, at, _)| (during_started..=during_ended).contains(at)).count();
        assert!(
            meanwhile < budget * 2,
            "{meanwhile} wrong guesses were answered while the 20 right tokens were ({:?})",
            during_ended - during_started
        );
    });
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
