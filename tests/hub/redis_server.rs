//! A real `redis-server` of the test's own, on a free loopback port, with no persistence
//! unless asked (`start_with`); killed when dropped. A test that needs one fails loudly when the binary is missing
//! (`make test` installs Debian's `redis-server` through `scripts/ensure-test-deps.sh`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::mongod::{announced, unassigned_port};

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` on a port of its own (one the kernel never hands out, so it
    /// can come back to it after a kill) and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut last = String::new();
        for _ in 0..20 {
            match Self::try_start_on(unassigned_port()).await {
                Ok(server) => return server,
                Err(why) => last = why,
            }
        }
        panic!("no port for a redis-server: {last}");
    }

    /// Starts `redis-server` on `port` (a new, empty one where a killed one was).
    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, None).await
    }

    /// Starts `redis-server` on `port`; with `persist_in`, it keeps its data there in an
    /// append-only file synced on every write (`--appendfsync always`), so a server killed
    /// with SIGKILL and started again on the same directory has every write it answered.
    pub async fn start_with(port: u16, persist_in: Option<&std::path::Path>) -> Self {
        Self::try_start_with(port, persist_in)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    async fn try_start_on(port: u16) -> Result<Self, String> {
        Self::try_start_with(port, None).await
    }

    /// Started means this very process said it is ready: not another that held the port.
    async fn try_start_with(port: u16, persist_in: Option<&std::path::Path>) -> Result<Self, String> {
        let port_arg = port.to_string();
        let mut args = vec!["--port", &port_arg, "--bind", "127.0.0.1", "--save", ""];
        let dir;
        match persist_in {
            Some(path) => {
                dir = path.to_str().expect("a UTF-8 path").to_string();
                args.extend(["--appendonly", "yes", "--appendfsync", "always", "--dir", &dir]);
            }
            None => args.extend(["--appendonly", "no"]),
        }
        let mut child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed for this test (scripts/ensure-test-deps.sh installs it)");
        let log = child.stdout.take().expect("stdout is piped");
        announced(&mut child, log, move |line| {
            line.contains("Ready to accept connections").then_some(port)
        })
        .await
        .map_err(|why| format!("redis-server on port {port}: {why}"))?;
        Ok(RedisServer { port, child })
    }

    /// The `REDIS_URL` a hub or client uses to reach it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    // ---- an outage the server comes back from with every key ----
    /// Freezes the server (SIGSTOP): it answers nothing, its connections stay open.
    pub fn pause(&self) {
        crate::common::signal(&self.child, libc::SIGSTOP);
    }

    /// Wakes a paused server (SIGCONT), with all its data.
    pub fn resume(&self) {
        crate::common::signal(&self.child, libc::SIGCONT);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn the_harness_starts_a_redis_server_that_answers() {
    let server = RedisServer::start().await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .expect("redis answers in time")
        .expect("redis accepts the connection");
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}
