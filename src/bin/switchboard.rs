//! The `switchboard` command: serve the hub, or help an operator set it up.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::archive::spool;
use switchboard::config::Settings;
use switchboard::logging::{self, LogFormat};
use switchboard::store::{self, Role};

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Real-time presence and chat-routing hub")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hub (the default). Settings come from the environment and `.env`.
    Serve,
    /// Create an admin account in the configured store, or reset its password.
    CreateAdmin {
        #[arg(long)]
        username: String,
        /// Read from standard input when absent, so it stays out of the shell history.
        #[arg(long, env = "SWITCHBOARD_NEW_PASSWORD")]
        password: Option<String>,
    },
    /// Check the settings and print them, without serving.
    CheckConfig,
}

fn main() -> ExitCode {
    switchboard::allocator::tune();
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("switchboard: could not read .env: {e}");
        return ExitCode::from(2);
    }
    let log_format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(log_format);
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    // On one core, work stealing buys nothing and costs atomics on every task wake-up:
    // the hub is then run on a single-threaded runtime.
    let runtime = if std::thread::available_parallelism().map_or(1, |n| n.get()) == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Runtime::new()
    }
    .expect("a tokio runtime starts");
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings, log_format).await,
            Command::CreateAdmin { username, password } => create_admin(settings, username, password).await,
            Command::CheckConfig => {
                println!("{:#?}", settings.redacted());
                // What can be known without connecting: the URI parses, DATA_DIR can hold a
                // store (or, on MongoDB, the archive's spool).
                store::preflight(&settings).map_err(|e| e.to_string())?;
                if store::backend_name(&settings) == "mongodb" {
                    spool::preflight(&settings.store.data_dir).map_err(|e| e.to_string())?;
                }
                if store::backend_name(&settings) != "memory" {
                    switchboard::webhooks::journal::preflight(&settings.store.data_dir).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("switchboard: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, log_format: LogFormat) -> Result<(), String> {
    raise_open_file_limit();
    let (listener, backlog) = switchboard::http::listening::bind(settings.bind, settings.http.listen_backlog)
        .map_err(|e| format!("cannot listen on BIND_ADDR={}: {e}", settings.bind))?;
    backlog.log();
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let Some(store) = open_store_answering_probes(&listener, &settings, &shutdown).await? else {
        tracing::info!("stopped before the store was open");
        return Ok(());
    };
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let setup = switchboard::bootstrap(&store, &settings)
        .await
        .map_err(|e| format!("bootstrap: {e}"))?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let mut banner = banner(&url, store.backend(), &setup.created_admin);
    // The chat widget's tag, and the demo shop that wears it when served.
    banner.insert(
        banner.len() - 1,
        format!("  chat widget:  <script src=\"{url}/widget.js\" async></script> (README \"Chat widget\")"),
    );
    if let Some(port) = settings.widget.demo_host_port {
        banner.insert(
            banner.len() - 1,
            format!("  demo shop with the widget: http://localhost:{port}/"),
        );
    }
    match log_format {
        // An operator at a terminal reads this first; it is kept out of the log's format.
        LogFormat::Text => println!("{}", banner.join("\n")),
        // A log shipper gets JSON lines only: the banner is one event.
        LogFormat::Json => tracing::info!(url = %url, pages = %banner[1..].join("; "), "{}", banner[0]),
    }
    switchboard::run(listener, settings, store, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What an operator sees at start-up: where each page is, and how to sign in.
fn banner(url: &str, backend: &str, created_admin: &Option<(String, Option<String>)>) -> Vec<String> {
    let mut lines = vec![
        format!("Switchboard is listening on {url} (store: {backend})"),
        format!("  customers:    {url}/                  agents:       {url}/agent.html"),
        format!("  admins:       {url}/admin.html        buddy list:   {url}/buddy.html"),
        format!("  book a call:  {url}/book.html         appointments: {url}/appointments.html (agents)"),
        format!("  video rooms:  {url}/room.html (opened from an invitation or an appointment)"),
        format!(
            "  API:          {url}/api/openapi.json   websockets: {url}/ws/customer, /ws/agent, /ws/bot, /ws/buddy, /ws/room"
        ),
    ];
    lines.push(match created_admin {
        Some((user, Some(password))) => format!(
            "  first admin created: sign in as {user:?} with password {password:?} (shown once; set ADMIN_PASSWORD to choose it)"
        ),
        Some((user, None)) => format!("  first admin created: sign in as {user:?} with ADMIN_PASSWORD"),
        None => "  sign in with an existing admin; `switchboard create-admin --username NAME` adds one".to_string(),
    });
    lines
}

/// Opens the store while a second handle on the listening socket answers `/healthz`
/// with "starting" (see `switchboard::starting`), so a hub waiting for its database is
/// seen alive but not ready. `None` when a signal stopped the hub first. Only MongoDB is
/// waited for; the embedded store opens at once or fails, so there the port simply
/// answers once the hub serves (a client that sees the port open is served).
async fn open_store_answering_probes(
    listener: &std::net::TcpListener,
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<Option<store::SharedStore>, String> {
    // The webhook journal, in DATA_DIR for every store that keeps anything: a damaged one
    // stops start-up before the hub serves or waits for MongoDB.
    let journal_usable = || match store::backend_name(settings) {
        "memory" => Ok(()),
        _ => switchboard::webhooks::journal::check_usable(&settings.store.data_dir).map_err(|e| e.to_string()),
    };
    if store::backend_name(settings) != "mongodb" {
        store::preflight(settings).map_err(|e| e.to_string())?;
        journal_usable()?;
        return store::open(settings).await.map(Some).map_err(|e| e.to_string());
    }
    // Everything but the server's answer is checked before waiting for it: the URI, and
    // DATA_DIR, where the archive's spool and the webhook journal must be writable once
    // MongoDB is up.
    store::preflight(settings).map_err(|e| e.to_string())?;
    spool::check_usable(&settings.store.data_dir).map_err(|e| e.to_string())?;
    journal_usable()?;
    let probes = listener
        .try_clone()
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| format!("cannot share the listening socket: {e}"))?;
    let opened = CancellationToken::new();
    let answering = tokio::spawn(switchboard::starting::serve_until(
        probes,
        std::sync::Arc::new(settings.clone()),
        opened.clone(),
    ));
    let store = tokio::select! {
        store = store::open(settings) => store.map(Some).map_err(|e| e.to_string()),
        () = shutdown.cancelled() => Ok(None),
    };
    opened.cancel();
    // Bounded: the starting server closes its last connections within its handover grace.
    if let Ok(Err(error)) = answering.await {
        tracing::warn!(%error, "the starting-up answers ended with an error");
    }
    store
}

/// Every connection, websocket or HTTP, takes a file descriptor, and the usual soft
/// limit (1,024) is far below what the hub holds (`MAX_CONNECTIONS`, 16,384 by
/// default). The soft limit is the process's own to raise up to the hard one, which
/// the operator set; the figure goes to the log so an outage at the limit can be told
/// apart from others.
fn raise_open_file_limit() {
    let before = rlimit::Resource::NOFILE.get();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => match before {
            Ok((soft, _)) if soft < now => {
                tracing::info!("open-file limit raised from {soft} to {now} (the hard limit)")
            }
            _ => tracing::info!("open-file limit: {now} (already the hard limit)"),
        },
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}; connections may run out of descriptors"),
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: telling clients and draining the archive");
    shutdown.cancel();
}

async fn create_admin(settings: Settings, username: String, password: Option<String>) -> Result<(), String> {
    let password = match password {
        Some(p) => p,
        None => {
            eprintln!("password (then end of input):");
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p).map_err(|e| e.to_string())?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if password.chars().count() < 8 {
        return Err("the password needs at least 8 characters".into());
    }
    let store = store::open(&settings).await.map_err(|e| e.to_string())?;
    let hash = switchboard::auth::hash_password(password, settings.password_hash_cost)
        .await
        .map_err(|e| e.to_string())?;
    match store.account_by_username(&username).await {
        Ok(mut existing) => {
            existing.password_hash = hash;
            existing.role = Role::Admin;
            existing.enabled = true;
            store.update_account(existing).await.map_err(|e| e.to_string())?;
            println!("reset the password of {username:?} and made it an enabled admin");
        }
        Err(_) => {
            let account = store::Account {
                id: uuid::Uuid::new_v4().to_string(),
                username: username.clone(),
                display_name: username.clone(),
                role: Role::Admin,
                password_hash: hash,
                categories: vec![],
                max_chats: 1,
                enabled: true,
                created_at: switchboard::clock::now_ms(),
            };
            store.create_account(account).await.map_err(|e| e.to_string())?;
            println!("created admin {username:?}");
        }
    }
    Ok(())
}
