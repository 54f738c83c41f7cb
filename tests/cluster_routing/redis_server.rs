//! A real `redis-server` on a free loopback port, without persistence, with `DEBUG`
//! allowed from loopback (for `DEBUG DIGEST`); killed when dropped. The routing tests and
//! `examples/routing_scripts_bench.rs` (which includes this file) both start theirs here.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A running `redis-server`. Fails loudly when missing (`scripts/ensure-test-deps.sh`
/// installs it).
pub struct RedisServer {
    port: u16,
    child: Child,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed for this test (scripts/ensure-test-deps.sh installs it)");
        // Built first, so that a server that never listens is still killed (on drop).
        let server = RedisServer { port, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not listen on port {port}");
    }

    pub async fn connect(&self) -> ConnectionManager {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        // These tests check decisions, not speed: on a loaded machine (beside the hub's
        // tests, niced) a script may answer after the client's default 500 ms, and a
        // race's join timed out so (a fresh clone's run).
        let config = ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .expect("redis answers in time")
        .expect("redis accepts the connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
