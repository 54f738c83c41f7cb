//! The hub's own log, as an operator's log file or shipper gets it: no terminal colour
//! codes when it does not go to a terminal, one JSON object a line with `LOG_FORMAT=json`,
//! and a bad `LOG_FORMAT` refused at start-up naming the variable.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the hub with its output piped (not a terminal) and collects its first lines,
/// up to and including the one `done` accepts; the hub is then killed.
fn first_lines(env: &[(&str, &str)], done: impl Fn(&str) -> bool) -> Vec<String> {
    // STORE=memory writes nothing; the hub still reads `.env` from its directory.
    let dir = std::env::temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(&dir)
        .env("STORE", "memory")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("ADMIN_PASSWORD", "logging-test-password")
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the switchboard binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let finished = done(&line);
                lines.push(line);
                if finished {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("the hub did not print the awaited line within 30 s; it printed: {lines:#?}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn a_log_that_goes_to_a_pipe_carries_no_terminal_colour_codes() {
    let lines = first_lines(&[], |line| line.contains("listening on"));
    // The banner comes after the store opened, so some log lines came first.
    assert!(lines.len() > 1, "expected log lines before the banner: {lines:#?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "a colour code in a piped log line: {line:?}");
    }
}

#[test]
fn log_format_json_gives_one_json_object_a_line_and_the_banner_as_an_event() {
    let lines = first_lines(&[("LOG_FORMAT", "json")], |line| line.contains("listening on"));
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}"));
        assert!(
            value.get("level").is_some() && value.get("timestamp").is_some(),
            "{line}"
        );
    }
    let banner: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let pages = banner["fields"]["pages"].as_str().unwrap_or_default();
    for page in [
        "/agent.html",
        "/admin.html",
        "/book.html",
        "/appointments.html",
        "/room.html",
    ] {
        assert!(pages.contains(page), "the banner event does not name {page}: {banner}");
    }
}

#[test]
fn the_text_banner_lists_every_page() {
    let lines = first_lines(&[], |line| line.contains("sign in"));
    let banner = lines.join("\n");
    for page in [
        "/agent.html",
        "/admin.html",
        "/buddy.html",
        "/book.html",
        "/appointments.html",
        "/room.html",
    ] {
        assert!(banner.contains(page), "the banner does not name {page}:\n{banner}");
    }
}

#[test]
fn a_bad_log_format_stops_start_up_naming_the_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(std::env::temp_dir())
        .env("STORE", "memory")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "logfmt")
        .output()
        .expect("the switchboard binary runs");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LOG_FORMAT"),
        "the error does not name LOG_FORMAT: {stderr}"
    );
}
