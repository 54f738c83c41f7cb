//! Sign-in and identity: password-guess throttling, the cost of an unknown user,
//! sessions whose revocation closes their sockets, and display names.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

/// The real binary on its own port with the in-memory store: its `/metrics` counts only its own work.
struct HubProcess {
    base: String,
    child: Child,
}

impl HubProcess {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("STORE", "memory")
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the hub binary starts");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return HubProcess { base, child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the hub process never answered on port {port}");
    }

    /// How many argon2 computations the process has run, from its own metrics.
    async fn password_hashes(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("switchboard_password_hashes_total "))
            .map_or(0, |n| n.trim().parse().expect("a count"))
    }

    async fn login(&self, username: &str, password: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}/api/login", self.base))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An unknown user costs a hash, as a wrong password does, so the answer's timing tells nothing.
#[tokio::test]
async fn an_unknown_user_costs_a_password_hash_like_a_wrong_password() {
    let hub = HubProcess::start().await;
    let before = hub.password_hashes().await;
    let (status, body) = hub.login("admin", "not-the-password").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_credentials")));
    let after_wrong_password = hub.password_hashes().await;
    assert_eq!(after_wrong_password - before, 1, "a wrong password runs one hash");

    let (status, body) = hub.login("nobody-by-that-name", "not-the-password").await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_credentials")));
    let after_unknown_user = hub.password_hashes().await;
    assert_eq!(
        after_unknown_user - after_wrong_password,
        1,
        "an unknown user runs one hash too"
    );
}
