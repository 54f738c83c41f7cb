//! The hub's own log, as an operator's log file or shipper gets it: no terminal colour
//! codes when it does not go to a terminal, one JSON object a line with `LOG_FORMAT=json`,
//! and a bad `LOG_FORMAT` refused at start-up naming the variable.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hub in memory on a free port, with its output piped (not a terminal), `env` set.
fn spawn_hub(env: &[(&str, &str)]) -> std::process::Child {
    // STORE=memory writes nothing; the hub still reads `.env` from its directory.
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(std::env::temp_dir())
        .env("STORE", "memory")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("ADMIN_PASSWORD", "logging-test-password")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the switchboard binary starts")
}

/// Starts the hub with its output piped (not a terminal) and collects its first lines,
/// up to and including the one `done` accepts; the hub is then killed.
fn first_lines(env: &[(&str, &str)], done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut child = spawn_hub(&[&[("RUST_LOG", "info")], env].concat());
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
        "/ws/bot",
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

/// A request whose path carries an API token (a `;parameter`, a page's path) is logged
/// without that path, even at `debug`, where every request's path is.
#[test]
fn a_path_holding_an_api_token_is_not_logged() {
    let secret = format!("sbt_{}", "Q".repeat(43));
    let mut child = spawn_hub(&[("RUST_LOG", "debug")]);
    let (tx, rx) = std::sync::mpsc::channel();
    for output in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut lines = vec![];
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the banner");
        lines.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let marker = "/after-the-token-probes";
    for path in [
        format!("/api/me;access_token={secret}"),
        format!("/somewhere;{secret}"),
        marker.to_string(),
    ] {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", &format!("{url}{path}")])
            .status();
    }
    // Every line up to the marker request's own.
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains(marker);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains(marker)),
        "requests are logged at debug: {lines:#?}"
    );
    for line in &lines {
        assert!(!line.contains(&secret), "a token in the log: {line}");
    }
}
