//! The listening socket's backlog: the real binary listens with `LISTEN_BACKLOG` connections
//! waiting to be accepted, capped by the system's limit, and says both at start-up. With
//! the std default of 128, a burst of websocket upgrades overflowed the queue and some
//! clients, `/healthz` among them, waited for their SYN's retry (1 s).

use crate::archive::TempDir;
use crate::edge::HubProcess;
use crate::storeops::{hub_command, refuses};

/// The system's cap on any listen backlog (Linux: `net.core.somaxconn`).
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("/proc/sys/net/core/somaxconn is readable")
        .trim()
        .parse()
        .expect("somaxconn is a number")
}

/// The backlog of the socket listening on `port`, as the kernel reports it: for a listening
/// socket, `ss` shows it as the Send-Q column.
fn backlog_of(port: u16) -> u32 {
    let output = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("`ss` (iproute2) runs: scripts/ensure-test-deps.sh installs it");
    assert!(output.status.success(), "ss failed: {output:?}");
    let listing = String::from_utf8_lossy(&output.stdout).to_string();
    let line = listing
        .lines()
        .find(|l| l.starts_with("LISTEN"))
        .unwrap_or_else(|| panic!("nothing listens on port {port}: {listing:?}"));
    // State, Recv-Q, Send-Q, local address, peer address.
    line.split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no Send-Q in {line:?}"))
}

#[tokio::test]
async fn the_listen_backlog_is_the_setting_capped_by_the_system_and_logged() {
    let limit = somaxconn();
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    // The default, a value under any usual limit, and the largest value allowed.
    for asked in [None, Some(777u32), Some(65_535)] {
        let setting = asked.map(|n| n.to_string());
        let env: Vec<(&str, &str)> = setting.iter().map(|n| ("LISTEN_BACKLOG", n.as_str())).collect();
        let hub = HubProcess::start(&env, soft, hard);
        let asked = asked.unwrap_or(4_096);
        let in_force = asked.min(limit);
        assert_eq!(
            backlog_of(hub.addr.port()),
            in_force,
            "LISTEN_BACKLOG={asked} with net.core.somaxconn={limit}"
        );
        // The log says what was asked and what is in force (printed before the banner).
        let printed = hub.printed();
        let said = printed
            .lines()
            .find(|l| l.contains("listen backlog"))
            .unwrap_or_else(|| panic!("no line about the listen backlog:\n{printed}"));
        assert!(
            said.contains(&format!("listen backlog {in_force} (LISTEN_BACKLOG={asked}")),
            "{said}"
        );
        if asked > limit {
            assert!(
                said.contains(&format!("capped by net.core.somaxconn={limit}")),
                "{said}"
            );
        }
    }
}

#[test]
fn a_bad_listen_backlog_stops_serve_and_check_config_naming_it() {
    let scratch = TempDir::new("bad-backlog");
    for value in ["0", "lots", "65536"] {
        let envs = [("STORE", "memory"), ("LISTEN_BACKLOG", value)];
        for command in ["serve", "check-config"] {
            refuses(
                hub_command(&scratch.0, &envs, &[command]),
                "LISTEN_BACKLOG",
                &format!("{command} with LISTEN_BACKLOG={value}"),
            );
        }
    }
}
