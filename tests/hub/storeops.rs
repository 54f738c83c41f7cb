//! The stores under operation: storage settings that cannot work stop start-up at once
//! (the real binary, as a subprocess), a MongoDB that does not answer yet is waited for
//! with `/healthz` saying "starting", and readiness follows the archive's backlog and
//! write latency.

use crate::common::signal;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::archive::TempDir;
use crate::common::{ADMIN_PASSWORD, Running, in_memory_mongod};

/// How long a hub given a bad setting may take to give up; a hang fails the test.
const EXIT_WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The hub binary with only `envs` set (no `.env`: it runs in `cwd`), its output captured.
pub fn hub_command(cwd: &Path, envs: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "info")
        // Several nodes must share it (REDIS_URL refuses to start without); harmless alone.
        .env("ROOM_TOKEN_SECRET", "a room token secret for the tests")
        // As light as an in-process test hub's: the cluster scenarios create dozens of agents.
        .env("SWITCHBOARD_TEST_LIGHT_PASSWORD_HASHES", "1")
        .envs(envs.iter().copied())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child` to exit, killing it (and failing) if it is still running after `EXIT_WAIT`.
fn exit_of(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + EXIT_WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{what}: still running after {EXIT_WAIT:?} instead of stopping; it said:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Runs `command`: it must stop with a non-zero exit and a message naming `var`.
pub fn refuses(mut command: Command, var: &str, what: &str) {
    let output = exit_of(command.spawn().expect("the hub binary starts"), what);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "{what}: exited successfully; it said:\n{said}"
    );
    assert!(said.contains(var), "{what}: the message does not name {var}:\n{said}");
}

/// Places a data directory cannot be, made in a fresh scratch directory (returned first,
/// to keep while the paths are used): a file, and directories whose `file` (the store's
/// or the spool's) is empty, or random bytes.
fn unfit_data_dirs(tag: &str, file: &str) -> (TempDir, PathBuf, PathBuf, PathBuf) {
    let scratch = TempDir::new(tag);
    let root = &scratch.0;
    let a_file = root.join("a-file");
    std::fs::write(&a_file, b"not a directory").unwrap();
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join(file), b"").unwrap();
    let random = root.join("random");
    std::fs::create_dir_all(&random).unwrap();
    let noise: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(random.join(file), &noise).unwrap();
    (scratch, a_file, empty, random)
}

/// Every bad storage setting stops `serve` (and, where it can be known without connecting,
/// `check-config`) with a non-zero exit and a message naming the variable.
#[test]
fn bad_storage_settings_stop_start_up_naming_the_variable() {
    let (scratch, a_file, empty, random) = unfit_data_dirs("bad-storage", "switchboard.redb");
    let root = &scratch.0;
    let corrupt = root.join("corrupt");
    make_a_store_then_damage_it(&corrupt);

    // (variable, value, what, also caught by check-config)
    let a_file = a_file.to_str().unwrap().to_string();
    let cases: Vec<(&str, String, &str, bool)> = vec![
        ("MONGODB_URI", "http://x".into(), "a URI of another scheme", true),
        ("MONGODB_URI", "mongodb://127.0.0.1:99999".into(), "port 99999", true),
        ("DATA_DIR", a_file.clone(), "DATA_DIR is a file", true),
        ("DATA_DIR", format!("{a_file}/data"), "DATA_DIR under a file", true),
        (
            "DATA_DIR",
            random.to_str().unwrap().into(),
            "a redb file of random bytes",
            true,
        ),
        ("DATA_DIR", empty.to_str().unwrap().into(), "a 0-byte redb file", true),
        (
            "DATA_DIR",
            corrupt.to_str().unwrap().into(),
            "a damaged redb file",
            false,
        ),
    ];
    for (var, value, what, known_without_connecting) in cases {
        let store = if var == "MONGODB_URI" { "mongodb" } else { "embedded" };
        let envs = [("STORE", store), (var, value.as_str())];
        refuses(hub_command(root, &envs, &["serve"]), var, &format!("serve with {what}"));
        if known_without_connecting {
            refuses(
                hub_command(root, &envs, &["check-config"]),
                var,
                &format!("check-config with {what}"),
            );
        }
    }
}

/// A real store with some history, then garbage written over its pages after the header.
fn make_a_store_then_damage_it(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = switchboard::store::EmbeddedStore::open(dir).await.unwrap();
        use switchboard::store::{Category, DeskStore};
        for n in 0..50 {
            let name = format!("category number {n} with a longish name to fill some pages");
            store
                .create_category(Category {
                    id: format!("c{n}"),
                    name,
                })
                .await
                .unwrap();
        }
    });
    let path = dir.join("switchboard.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "the store file is {} bytes", bytes.len());
    for b in &mut bytes[4096..] {
        *b = rand::random();
    }
    std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
}

/// A data directory the hub may not write to stops start-up too. Root writes anywhere, so
/// under root the hub runs as `nobody` (util-linux's setpriv).
#[test]
fn an_unwritable_data_dir_stops_start_up_naming_the_variable() {
    refuses_an_unwritable_data_dir(&[("STORE", "embedded")]);
}

/// On MongoDB, DATA_DIR holds the archive's spool: unwritable, it stops start-up before
/// MongoDB is waited for (nothing listens at the URI here, so a hub that waited would hang).
#[test]
fn an_unwritable_data_dir_stops_a_hub_on_mongodb_before_it_waits() {
    let uri = format!("mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=300", free_port());
    refuses_an_unwritable_data_dir(&[("STORE", "mongodb"), ("MONGODB_URI", uri.as_str())]);
}

fn refuses_an_unwritable_data_dir(store: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    let scratch = TempDir::new("unwritable");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let locked = scratch.0.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut envs = store.to_vec();
    envs.push(("DATA_DIR", locked.to_str().unwrap()));
    let mut command = hub_command(&scratch.0, &envs, &["serve"]);
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } == 0 {
        let direct = command;
        command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(direct.get_program())
            .args(direct.get_args())
            .env_clear()
            .envs(direct.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(&scratch.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }
    refuses(command, "DATA_DIR", "serve with an unwritable DATA_DIR");
}

/// GETs `path` until it answers; returns (status, body).
async fn get_when_answering(port: u16, path: &str) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + EXIT_WAIT;
    loop {
        if let Ok(res) = client.get(format!("http://127.0.0.1:{port}{path}")).send().await {
            let status = res.status().as_u16();
            return (status, res.json().await.unwrap_or(Value::Null));
        }
        assert!(Instant::now() < deadline, "{path} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A MongoDB that does not answer yet is waited for, and meanwhile the port answers
/// `/healthz` with "starting" and `/readyz` with 503; once the server is up, the hub
/// serves for real on the same port.
#[tokio::test]
async fn a_hub_waiting_for_mongodb_answers_starting_then_serves() {
    let scratch = TempDir::new("starting");
    // The server's port is named before it runs: one the kernel never hands out.
    let (port, mongo_port) = (free_port(), crate::mongod::unassigned_port());
    let uri = format!("mongodb://127.0.0.1:{mongo_port}/?serverSelectionTimeoutMS=300");
    let bind = format!("127.0.0.1:{port}");
    let envs = [
        ("STORE", "mongodb"),
        ("MONGODB_URI", uri.as_str()),
        ("BIND_ADDR", bind.as_str()),
    ];
    let mut command = hub_command(&scratch.0, &envs, &["serve"]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let hub = Running(command.spawn().unwrap());

    let (status, body) = get_when_answering(port, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("starting")), "{body}");
    let (status, body) = get_when_answering(port, "/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("starting")), "{body}");
    let (status, _) = get_when_answering(port, "/api/categories").await;
    assert_eq!(status, 503);

    // The server comes up: the hub opens the store and serves on the same socket.
    let server = Running(
        crate::mongod::start(mongo_port, ":memory:")
            .await
            .unwrap_or_else(|why| panic!("{why}"))
            .0,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get_when_answering(port, "/readyz").await;
        if status == 200 {
            assert_eq!(body["store"], "mongodb", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, categories) = get_when_answering(port, "/api/categories").await;
    assert_eq!(status, 200, "{categories}");
    assert_eq!(categories.as_array().map(Vec::len), Some(4), "{categories}");
    drop(hub);
    drop(server);
}

async fn get_json(url: &str) -> (u16, Value) {
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url} did not answer: {e}"));
    (res.status().as_u16(), res.json().await.unwrap())
}

/// A frozen MongoDB (SIGSTOP) holds acknowledgements; the hub says "slow" on `/healthz`
/// and `/readyz` meanwhile, `/readyz` also names a backlog over `READY_MAX_BACKLOG`, and
/// all is well again once the server runs (SIGCONT) and the backlog is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_shows_slow_and_not_ready_until_the_backlog_is_written() {
    use crate::common::{QUIET, TestHub};
    use serde_json::json;
    let (server, uri) = in_memory_mongod().await;
    let store = switchboard::store::MongoStore::connect(&uri, "stall").await.unwrap();
    let hub = TestHub::with_store(std::sync::Arc::new(store), |s| {
        s.archive.slow_write = Duration::from_millis(300);
        s.archive.ready_max_backlog = 5;
    })
    .await;
    let mut agent = hub.agent("ann", &["general"], 1).await;
    let (mut customer, _) = hub.customer_in_chat("Carla", "general").await;
    customer.send(json!({"type": "message", "text": "before"})).await;
    customer.next_of("ack").await;
    let (status, ready) = get_json(&hub.url("/readyz")).await;
    assert_eq!(status, 200, "{ready}");

    signal(&server.0, libc::SIGSTOP);
    for i in 0..8 {
        customer
            .send(json!({"type": "message", "text": format!("frozen {i}")}))
            .await;
    }
    for _ in 0..8 {
        agent.next_of("message").await; // the peer gets messages at once
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = get_json(&hub.url("/healthz")).await;
        if health["status"] == "slow" {
            assert_eq!(health["archive_slow"], true, "{health}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never slow while the store is frozen: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        customer.recv_within(QUIET).await.is_none(),
        "an acknowledgement came while the store was frozen"
    );
    let (status, ready) = get_json(&hub.url("/readyz")).await;
    assert_eq!(status, 503, "{ready}");
    let because: Vec<&str> = ready["not_ready_because"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(because.contains(&"archive_backlog"), "{ready}");
    assert!(
        ready["ready"] == false && ready["archive_backlog"].as_u64() > Some(5),
        "{ready}"
    );

    signal(&server.0, libc::SIGCONT);
    for _ in 0..8 {
        customer.next_of("ack").await; // every acknowledgement comes
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, ready) = get_json(&hub.url("/readyz")).await;
        if status == 200 {
            assert_eq!(ready["status"], "ok", "{ready}");
            assert_eq!(ready["not_ready_because"], json!([]), "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    hub.stop().await;
    drop(server);
}

/// On MongoDB, DATA_DIR holds the archive's spool (`archive-spool.redb`): a DATA_DIR that
/// cannot be a directory, or a spool file that is empty or not a redb file, stops `serve`
/// before MongoDB is waited for, and `check-config` too. Nothing listens at the URI, so a
/// hub that waited for MongoDB instead would answer "starting" forever.
#[test]
fn a_data_dir_unfit_for_the_spool_stops_a_hub_on_mongodb() {
    let (scratch, a_file, empty, random) = unfit_data_dirs("spool-dir", "archive-spool.redb");
    let root = &scratch.0;

    let uri = format!("mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=300", free_port());
    let a_file = a_file.to_str().unwrap().to_string();
    let cases = [
        (a_file.clone(), "DATA_DIR is a file"),
        (format!("{a_file}/data"), "DATA_DIR under a file"),
        (empty.to_str().unwrap().to_string(), "a 0-byte spool file"),
        (random.to_str().unwrap().to_string(), "a spool file of random bytes"),
    ];
    for (dir, what) in cases {
        let envs = [
            ("STORE", "mongodb"),
            ("MONGODB_URI", uri.as_str()),
            ("DATA_DIR", dir.as_str()),
        ];
        refuses(
            hub_command(root, &envs, &["serve"]),
            "DATA_DIR",
            &format!("serve with {what}"),
        );
        refuses(
            hub_command(root, &envs, &["check-config"]),
            "DATA_DIR",
            &format!("check-config with {what}"),
        );
    }
    let zero = std::fs::metadata(empty.join("archive-spool.redb")).unwrap().len();
    assert_eq!(zero, 0, "the refused 0-byte spool is left as it was");
}

/// Once an outage has been detected, a store that hangs (MongoDB frozen with SIGSTOP)
/// does not hold acknowledgements: a message arriving while a retry hangs is spooled at
/// once and acknowledged, not after that write's timeout. Then the server runs again
/// and every message is archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_store_holds_no_acknowledgement_once_the_outage_is_known() {
    use serde_json::json;
    /// The archive's write timeout here (`ARCHIVE_WRITE_TIMEOUT_MS`; 15 s by default).
    const WRITE_TIMEOUT: Duration = Duration::from_secs(8);
    /// Far below the hung write's timeout, far above a spool commit.
    const ACK_WAIT: Duration = Duration::from_secs(3);
    let (child, mongo_port) = crate::mongod::start_in_memory().await;
    // Started means this very process said it listens: the one frozen below.
    let mut server = Running(child);
    let uri = format!("mongodb://127.0.0.1:{mongo_port}");
    // A long server selection: once the driver has marked the frozen server unknown, a
    // write waits for it rather than failing within the hub's 2 s default, so every retry
    // hangs until the archive's own write timeout.
    let hanging = format!("{uri}/?serverSelectionTimeoutMS=120000");
    let (hub, _spool_dir) = crate::archive_once::hub_on_mongo(&hanging, "frozen", WRITE_TIMEOUT).await;
    let mut _agent = hub.agent("ann", &["general"], 1).await;
    let mut customer = hub.customer("Carla", "general").await;
    let chat = customer.chat_started().await;
    customer.send(json!({"type": "message", "text": "before"})).await;
    customer.next_of("ack").await;

    signal(&server.0, libc::SIGSTOP);
    // The first write hangs until its timeout: that is how the outage becomes known.
    customer
        .send(json!({"type": "message", "text": "detects the outage"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = get_json(&hub.url("/healthz")).await;
        if health["archive_degraded"] == true {
            break;
        }
        if Instant::now() > deadline {
            let to_customer = customer.recv_within(Duration::from_secs(1)).await;
            panic!(
                "the frozen store never showed as degraded: {health}; the customer got {to_customer:?}; the server: {:?}",
                server.0.try_wait()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acked = customer.recv_within(Duration::from_secs(30)).await;
    assert_eq!(
        acked.as_ref().map(|m| m["type"].clone()),
        Some(json!("ack")),
        "{acked:?}"
    );

    // Retries hang on the frozen server meanwhile; each message is acknowledged anyway.
    let mut texts = vec!["before".to_string(), "detects the outage".to_string()];
    for i in 0..6 {
        let text = format!("frozen {i}");
        customer
            .send(json!({"type": "message", "text": text, "client_id": text}))
            .await;
        let ack = customer.recv_within(ACK_WAIT).await;
        assert!(
            ack.as_ref()
                .is_some_and(|m| m["type"] == "ack" && m["client_id"] == text),
            "message {i}: no acknowledgement within {ACK_WAIT:?} while the store is frozen: {ack:?}"
        );
        texts.push(text);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    signal(&server.0, libc::SIGCONT);
    let reader = switchboard::store::MongoStore::connect(&uri, "frozen").await.unwrap();
    use switchboard::store::ArchiveStore;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: Vec<String> = match reader.conversation(&chat).await {
            Ok(record) => record.messages.iter().map(|m| m.text.clone()).collect(),
            Err(_) => vec![],
        };
        if stored == texts {
            break;
        }
        assert!(Instant::now() < deadline, "not all archived: {stored:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    hub.stop().await;
    drop(server);
}

/// A redb log file as the hub writes one (`file` in `dir`, its records in `table`), then
/// damaged as `how` says: cut short, or its bytes after the header overwritten.
fn damaged_log(dir: &Path, file: &str, table: &str, how: Damage) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(file);
    {
        let log = redb::Database::create(&path).unwrap();
        let records: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(table);
        let tx = log.begin_write().unwrap();
        {
            let mut records = tx.open_table(records).unwrap();
            for key in 1..=100u64 {
                records
                    .insert(key, format!("{{\"record\": {key}}}").as_bytes())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    match how {
        Damage::CutShort => bytes.truncate(bytes.len() / 3),
        Damage::Overwritten => bytes[64..].iter_mut().for_each(|b| *b = rand::random()),
    }
    std::fs::write(&path, bytes).unwrap();
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    CutShort,
    Overwritten,
}

/// `serve` in `dir` with `envs` stops, saying what is wrong with `file` and what to do,
/// without a panic or a backtrace.
fn stops_naming_the_damaged_file(cwd: &Path, envs: &[(&str, &str)], file: &str, what: &str) {
    let output = exit_of(hub_command(cwd, envs, &["serve"]).spawn().unwrap(), what);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{what}: started; it said:\n{said}");
    for needed in ["DATA_DIR", file, "move it away"] {
        assert!(
            said.contains(needed),
            "{what}: the message does not say {needed:?}:\n{said}"
        );
    }
    for unwanted in ["panicked", "backtrace"] {
        assert!(!said.contains(unwanted), "{what}: {unwanted}:\n{said}");
    }
}

/// A webhook journal (`webhook-journal.redb`) or an archive spool (`archive-spool.redb`)
/// that is damaged (cut short, or garbage after its header) stops start-up with a message
/// naming the file and `DATA_DIR` and saying what to do, not a panic.
#[test]
fn a_damaged_journal_or_spool_stops_start_up_saying_what_to_do() {
    let scratch = TempDir::new("damaged-logs");
    let root = &scratch.0;
    let uri = format!("mongodb://127.0.0.1:{}/?serverSelectionTimeoutMS=300", free_port());
    for how in [Damage::CutShort, Damage::Overwritten] {
        let journal_dir = root.join(format!("journal-{how:?}"));
        damaged_log(&journal_dir, "webhook-journal.redb", "webhook_events", how);
        let journal_dir = journal_dir.to_str().unwrap();
        let stores: [&[(&str, &str)]; 2] = [&[("STORE", "embedded")], &[("STORE", "mongodb"), ("MONGODB_URI", &uri)]];
        for store in stores {
            let mut envs = store.to_vec();
            envs.push(("DATA_DIR", journal_dir));
            stops_naming_the_damaged_file(
                root,
                &envs,
                "webhook-journal.redb",
                &format!("a webhook journal {how:?}, {store:?}"),
            );
        }
        let spool_dir = root.join(format!("spool-{how:?}"));
        damaged_log(&spool_dir, "archive-spool.redb", "spooled_events", how);
        stops_naming_the_damaged_file(
            root,
            &[
                ("STORE", "mongodb"),
                ("MONGODB_URI", &uri),
                ("DATA_DIR", spool_dir.to_str().unwrap()),
            ],
            "archive-spool.redb",
            &format!("an archive spool {how:?}"),
        );
    }
}
