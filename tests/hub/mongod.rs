//! MongoDB-wire servers (secantusd-py) that a test starts, stops, freezes and restarts.
//!
//! A server counts as started only when ITS OWN "listening on" line says so. Waiting for
//! the port to answer is not enough: on a busy machine another test's server (or any
//! socket) can hold the port, the child dies of "address in use", and the test then
//! talks to — or freezes, or kills — a server that is not its own. A CI run showed
//! exactly that kind of cross-talk between two outage tests running side by side.
//!
//! Ports: a fresh server takes one from the kernel (`--port 0`), which no other socket
//! can hold at that moment. A server that must come back on the SAME port (its clients
//! keep the address) gets one below the kernel's ephemeral range instead, so no socket
//! that asks the kernel for "any port" can take it while the server is down.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to say it listens (Python and WiredTiger starting on a
/// loaded machine).
const START_WAIT: Duration = Duration::from_secs(60);

/// Ports for servers that restart on the same port: below Linux's default ephemeral
/// range (32768-60999), so the kernel never hands them out for port 0 or an outgoing
/// connection.
const FIXED_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// The server binary the harness names (scripts/with-mongo.sh).
fn binary() -> String {
    std::env::var("SWITCHBOARD_TEST_MONGOD")
        .expect("SWITCHBOARD_TEST_MONGOD is not set: run the tests with `make test` (scripts/with-mongo.sh)")
}

/// Starts secantusd-py on `port` (0: the kernel picks one) with `storage` (a directory,
/// or ":memory:"), and returns the child and the port it listens on, or why it did not
/// start (for one, the port was taken).
pub async fn start(port: u16, storage: &str) -> Result<(Child, u16), String> {
    start_with(port, storage, &[]).await
}

/// As [`start`], with `extra` arguments for the server.
async fn start_with(port: u16, storage: &str, extra: &[&str]) -> Result<(Child, u16), String> {
    let mut child = Command::new(binary())
        .args(["--port", &port.to_string(), "--storage-path", storage])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("secantusd-py did not start: {e}"))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let found = announced(&mut child, stderr, |line| {
        line.split("listening on ")
            .nth(1)
            .and_then(|address| address.rsplit(':').next())
            .and_then(|p| p.trim().parse::<u16>().ok())
    })
    .await;
    found
        .map(|port| (child, port))
        .map_err(|log| format!("secantusd-py on port {port}: {log}"))
}

/// Reads a started server's log (to its end, so the pipe never fills) until `announces`
/// finds the port in a line; `Err` with the log so far when the server exits first or
/// says nothing within [`START_WAIT`].
pub async fn announced(
    child: &mut Child,
    log: impl std::io::Read + Send + 'static,
    announces: impl Fn(&str) -> Option<u16> + Send + 'static,
) -> Result<u16, String> {
    let (tx, rx) = mpsc::channel::<Result<u16, String>>();
    std::thread::spawn(move || {
        let mut seen = String::new();
        let mut told = false;
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if told {
                continue;
            }
            if let Some(port) = announces(&line) {
                let _ = tx.send(Ok(port));
                told = true;
            } else {
                seen.push_str(&line);
                seen.push('\n');
            }
        }
        if !told {
            let _ = tx.send(Err(seen));
        }
    });
    let deadline = Instant::now() + START_WAIT;
    loop {
        match rx.try_recv() {
            Ok(Ok(port)) => return Ok(port),
            Ok(Err(log)) => {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(format!("exited ({status}):\n{log}"));
            }
            Err(mpsc::TryRecvError::Disconnected) => unreachable!("the reader always says something"),
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("did not say it listens within {START_WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port for a server that does not run yet, which the kernel never hands out: one no
/// other test of this process was given (drawn at random, two tests at once drew the same
/// one now and then, and a cluster node that finds its port taken exits at its start), and
/// that nothing listens on now. Another process may still choose it before the caller's
/// server binds it; that server then fails loudly.
pub fn unassigned_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = rand::random_range(FIXED_PORTS);
        if given.insert(port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts a server on a port of its own that it can come back to after a stop.
pub async fn start_restartable(storage: &Path) -> (Child, u16) {
    let storage = storage.to_str().expect("a UTF-8 path");
    let mut last = String::new();
    for _ in 0..20 {
        let port = unassigned_port();
        match start(port, storage).await {
            Ok(started) => return started,
            Err(why) => last = why,
        }
    }
    panic!("no port for a restartable MongoDB-wire server: {last}");
}

/// Starts a throwaway in-memory server on a port the kernel picks.
pub async fn start_in_memory() -> (Child, u16) {
    start(0, ":memory:").await.unwrap_or_else(|why| panic!("{why}"))
}

/// Starts a throwaway in-memory server that takes `configureFailPoint` (its test commands
/// on), so a test can hold the hub's writes while its reads answer.
pub async fn start_in_memory_with_failpoints() -> (Child, u16) {
    start_with(0, ":memory:", &["--enable-test-commands"])
        .await
        .unwrap_or_else(|why| panic!("{why}"))
}
