//! A real `redis-server` of the test's own, on a free loopback port, with no persistence
//! unless asked (`start_with`); killed when dropped. A test that needs one fails loudly when the binary is missing
//! (`make test` installs Debian's `redis-server` through `scripts/ensure-test-deps.sh`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::archive::{free_port, wait_for_port};

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts `redis-server` on `port` (a new, empty one where a killed one was).
    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, None).await
    }

    /// Starts `redis-server` on `port`; with `persist_in`, it keeps its data there in an
    /// append-only file synced on every write (`--appendfsync always`), so a server killed
    /// with SIGKILL and started again on the same directory has every write it answered.
    pub async fn start_with(port: u16, persist_in: Option<&std::path::Path>) -> Self {
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
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed for this test (scripts/ensure-test-deps.sh installs it)");
        wait_for_port(port).await;
        RedisServer { port, child }
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
