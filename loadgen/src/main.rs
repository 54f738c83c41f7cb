//! `loadgen`: plays customers and agents against a running Switchboard hub
//! over the documented websocket protocol, checks what they receive, and
//! writes a JSON result and a Markdown table.
//!
//! `loadgen run <scenario>` runs one of idle, relay, routing, queue, archive, soak;
//! the scenario's knobs come from `--config FILE.json` and/or flags (flags win).
//! `--procs N` (idle) spawns N children with `--shard i/N` and merges their
//! results. `loadgen report` turns the scenario results into the benchmark report.

mod bare;
mod cluster_report;
mod http;
mod hubinfo;
mod idle;
mod proto;
mod queue;
mod relay;
mod report;
mod routing;
mod setup;
mod soak;
mod stats;
mod uploads_report;
mod wsconn;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::json;

use crate::setup::Target;
use crate::stats::{RunResult, Stats};

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator and checker for Switchboard")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario against a running hub.
    Run(Box<RunArgs>),
    /// Build the benchmark report from scenario results.
    Report(report::ReportArgs),
    /// Serve a bare websocket relay and line (no JSON, ids or archive): the floor `run relay|queue --bare` measures.
    BareRelay {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Debug)]
enum Scenario {
    Idle,
    Relay,
    Routing,
    Queue,
    Archive,
    /// The relay at one steady rate for a long time, the hub's memory read as it goes.
    Soak,
}

#[derive(Args, Clone)]
struct RunArgs {
    scenario: Scenario,
    /// The hub's address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    hub: SocketAddr,
    /// Source addresses to spread connections over, e.g. 127.0.0.2-127.0.0.40.
    #[arg(long, default_value = "127.0.0.2-127.0.0.33")]
    sources: String,
    #[arg(long, default_value = "admin")]
    admin_user: String,
    #[arg(long, env = "LOADGEN_ADMIN_PASSWORD", default_value = "bench-admin-pass")]
    admin_password: String,
    /// The hub's process id, to read its memory and CPU time from /proc.
    #[arg(long)]
    hub_pid: Option<u32>,
    /// Scenario knobs as JSON (the same names as the flags, with underscores).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write the JSON result (and the Markdown table next to it, .md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Spread the connections over this many processes (idle).
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// This process's share: i/n (set by the parent).
    #[arg(long, hide = true)]
    shard: Option<String>,
    /// Tokio worker threads (default: the CPUs this process may use).
    #[arg(long)]
    threads: Option<usize>,
    /// A cluster's nodes that agents sign in and connect to, comma-separated, each agent
    /// taking the next (default: --hub). Staff set-up over HTTP (the admin) uses --hub.
    #[arg(long, value_delimiter = ',')]
    agent_hubs: Vec<SocketAddr>,
    /// A cluster's nodes that customers connect to, comma-separated, each customer taking
    /// the next (default: --hub).
    #[arg(long, value_delimiter = ',')]
    customer_hubs: Vec<SocketAddr>,
    /// relay/routing: processes whose CPU time is reported beside the traffic, as
    /// name=pid, comma-separated (e.g. the nodes and redis-server); default: the hub's.
    #[arg(long, value_delimiter = ',')]
    watch_pids: Vec<String>,
    #[command(flatten)]
    knobs: Knobs,
}

/// Scenario knobs; unset ones take the scenario's default.
#[derive(Args, Deserialize, Default, Clone, Debug)]
#[serde(default, deny_unknown_fields)]
struct Knobs {
    /// idle: customers to connect (over all processes).
    #[arg(long)]
    customers: Option<usize>,
    /// relay/archive: chats (one customer and a share of an agent each).
    #[arg(long)]
    chats: Option<usize>,
    /// Chats per agent (1 to 4).
    #[arg(long)]
    max_chats: Option<u8>,
    /// relay: total message rates per step, comma-separated (msg/s).
    #[arg(long)]
    rates: Option<String>,
    /// relay/archive: seconds per rate step.
    #[arg(long)]
    step_secs: Option<f64>,
    /// Bytes of text per message.
    #[arg(long)]
    msg_size: Option<usize>,
    /// relay: stop rising after a step whose p99 passes this.
    #[arg(long)]
    stop_p99_ms: Option<f64>,
    /// relay/archive: shortest pause of a connection's writer (ms); messages due meanwhile share one write.
    #[arg(long)]
    send_tick_ms: Option<f64>,
    /// relay/queue: the target is `loadgen bare-relay` (or a relay speaking its `hello`), not a hub.
    #[arg(long)]
    bare: Option<bool>,
    /// relay: the target sends each sender its own copy back (the hub's acknowledgement, the bare
    /// relay's echo); false for a relay that only forwards (the Node ws relay, `bench/ws-relay.js`).
    #[arg(long)]
    acks: Option<bool>,
    /// Seconds to wait after sending stops for the last copies.
    #[arg(long)]
    drain_secs: Option<f64>,
    /// routing: agents (max_chats each).
    #[arg(long)]
    agents: Option<usize>,
    /// routing: customers per round.
    #[arg(long)]
    burst: Option<usize>,
    /// routing: paced rounds; queue: routes.
    #[arg(long)]
    rounds: Option<usize>,
    /// routing: customers joining a second in paced rounds.
    #[arg(long)]
    join_rate: Option<f64>,
    /// routing: rounds after the paced ones where every customer joins at once.
    #[arg(long)]
    burst_rounds: Option<usize>,
    /// routing: customers waiting meanwhile in another category; queue: the line's length.
    #[arg(long)]
    waiting: Option<usize>,
    /// The category customers join.
    #[arg(long)]
    category: Option<String>,
    /// idle: connections being opened at once (per process).
    #[arg(long)]
    concurrency: Option<usize>,
    /// idle: seconds to let the hub settle before reading its memory.
    #[arg(long)]
    settle_secs: Option<f64>,
    /// idle (single process): seconds to hold the connections after measuring.
    #[arg(long)]
    hold_secs: Option<f64>,
    /// relay/soak: read the hub's VmRSS this often during the traffic (soak: every 10 s).
    #[arg(long)]
    rss_every_secs: Option<f64>,
    /// relay: files uploaded at once over HTTP during the steps, each by a chat's customer
    /// (one after another, each upload to the next chat), beside the messages.
    #[arg(long)]
    uploads: Option<usize>,
    /// relay: bytes of each uploaded file (plain text, so the hub keeps it as it is).
    #[arg(long)]
    upload_bytes: Option<usize>,
}

impl Knobs {
    fn overlay(mut self, top: &Knobs) -> Knobs {
        macro_rules! take { ($($f:ident),*) => { $( if top.$f.is_some() { self.$f = top.$f.clone(); } )* } }
        take!(
            customers,
            chats,
            max_chats,
            rates,
            step_secs,
            msg_size,
            stop_p99_ms,
            send_tick_ms,
            bare,
            acks,
            drain_secs,
            agents,
            burst,
            rounds,
            join_rate,
            burst_rounds,
            waiting,
            category,
            concurrency,
            settle_secs,
            hold_secs,
            rss_every_secs,
            uploads,
            upload_bytes
        );
        self
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Report(args) => match report::build(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen report: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::BareRelay { bind } => match bare::serve(bind) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen bare-relay: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run(args) => {
            // On one CPU (the bench pins the loadgen to one), the current-thread
            // scheduler does the same work without cross-thread wake-ups.
            let threads = args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let mut rt = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut rt = tokio::runtime::Builder::new_multi_thread();
                rt.worker_threads(threads);
                rt
            };
            let rt = rt.enable_all().build().expect("a tokio runtime starts");
            match rt.block_on(run(*args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(3),
                Err(e) => {
                    eprintln!("loadgen: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs (or fans out) one scenario; Ok(false) when delivery checks failed.
async fn run(args: RunArgs) -> Result<bool, String> {
    let file_knobs: Knobs = match &args.config {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?)
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => Knobs::default(),
    };
    let knobs = file_knobs.overlay(&args.knobs);
    let name = format!("{:?}", args.scenario).to_lowercase();
    let result = if args.procs > 1 && args.shard.is_none() {
        fan_out(&args, &knobs, &name).await?
    } else {
        run_here(&args, &knobs, &name).await?
    };
    let child = args.shard.is_some();
    if child {
        println!("RESULT {}", serde_json::to_string(&result).expect("results serialize"));
    } else {
        println!("{}", result.markdown());
        if let Some(out) = &args.out {
            let mut slim = result.clone();
            slim.histogram.clear();
            std::fs::write(out, serde_json::to_string_pretty(&slim).expect("results serialize"))
                .map_err(|e| format!("{}: {e}", out.display()))?;
            std::fs::write(out.with_extension("md"), result.markdown()).map_err(|e| e.to_string())?;
        }
    }
    Ok(result.integrity_ok())
}

async fn run_here(args: &RunArgs, k: &Knobs, name: &str) -> Result<RunResult, String> {
    let (shard_i, shard_n) = match &args.shard {
        Some(s) => {
            let (i, n) = s.split_once('/').ok_or("--shard is i/n")?;
            (
                i.parse::<usize>().map_err(|e| e.to_string())?,
                n.parse::<usize>().map_err(|e| e.to_string())?,
            )
        }
        None => (0, 1),
    };
    // Each shard gets its own slice of the source addresses.
    let all = wsconn::parse_sources(&args.sources);
    let per = (all.len() / shard_n).max(1);
    let sources: Vec<_> = all.iter().cycle().skip(shard_i * per).take(per).copied().collect();
    let tag = format!(
        "{}{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 100_000_000),
        shard_i
    );
    let target = Target {
        hub: args.hub,
        sources,
        admin_user: args.admin_user.clone(),
        admin_password: args.admin_password.clone(),
        tag,
        agent_hubs: if args.agent_hubs.is_empty() {
            vec![args.hub]
        } else {
            args.agent_hubs.clone()
        },
        customer_hubs: if args.customer_hubs.is_empty() {
            vec![args.hub]
        } else {
            args.customer_hubs.clone()
        },
    };
    let watch = hubinfo::watch_list(&args.watch_pids, args.hub_pid)?;
    let stats = Arc::new(Stats::new());
    let label = if shard_n > 1 {
        format!("{name}[{shard_i}/{shard_n}]")
    } else {
        name.to_string()
    };
    stats.spawn_progress(label);
    let shard = format!("{shard_i}/{shard_n}");
    let rates = |default: &str| -> Vec<f64> {
        k.rates
            .as_deref()
            .unwrap_or(default)
            .split(',')
            .filter_map(|r| r.trim().parse().ok())
            .collect()
    };
    let result = match args.scenario {
        Scenario::Idle => {
            let total = k.customers.unwrap_or(1000);
            let share = total / shard_n + usize::from(shard_i < total % shard_n);
            let first = (0..shard_i)
                .map(|i| total / shard_n + usize::from(i < total % shard_n))
                .sum();
            let cfg = idle::Idle {
                customers: share,
                first,
                concurrency: k.concurrency.unwrap_or(256),
                category: k.category.clone().unwrap_or_else(|| "general".into()),
                settle_secs: k.settle_secs.unwrap_or(3.0),
                hold_secs: k.hold_secs.unwrap_or(1.0),
                child: args.shard.is_some(),
                hub_pid: if args.shard.is_some() { None } else { args.hub_pid },
            };
            let figures = idle::run(&target, &stats, &cfg).await;
            RunResult::from_stats(name, &shard, &stats, None, figures)
        }
        Scenario::Relay | Scenario::Archive | Scenario::Soak => {
            let archive = args.scenario == Scenario::Archive;
            // The soak: 20 chats, one per agent, 10 msg/s each (5 a side, under the default
            // rate limit), for an hour; one step, the hub's memory read every 10 s.
            let soak = args.scenario == Scenario::Soak;
            let cfg = relay::Relay {
                chats: k.chats.unwrap_or(if soak { 20 } else { 500 }),
                max_chats: k.max_chats.unwrap_or(if soak { 1 } else { 4 }),
                category: k.category.clone().unwrap_or_else(|| "sales".into()),
                rates: if archive {
                    rates("25000")
                } else if soak {
                    rates("200")
                } else {
                    rates("1000,5000,10000,20000,40000,80000,100000")
                },
                step_secs: k.step_secs.unwrap_or(if archive {
                    10.0
                } else if soak {
                    3600.0
                } else {
                    5.0
                }),
                msg_size: k.msg_size.unwrap_or(if soak { 100 } else { 64 }),
                stop_p99_ms: k.stop_p99_ms.unwrap_or(50.0),
                send_tick_ms: k.send_tick_ms.unwrap_or(1.0),
                drain_secs: k.drain_secs.unwrap_or(10.0),
                archive_check: archive,
                hub_pid: args.hub_pid,
                bare: k.bare.unwrap_or(false),
                acks: k.acks.unwrap_or(true),
                watch: watch.clone(),
                rss_every_secs: k.rss_every_secs.or(soak.then_some(10.0)),
                uploads: k.uploads.unwrap_or(0),
                upload_bytes: k.upload_bytes.unwrap_or(10_000_000),
            };
            let (mut figures, hist) = relay::run(&target, &stats, &cfg).await?;
            if soak {
                figures["soak_rate"] = serde_json::json!(cfg.rates.first());
            }
            RunResult::from_stats(name, &shard, &stats, Some(&hist), figures)
        }
        Scenario::Routing => {
            let cfg = routing::Routing {
                agents: k.agents.unwrap_or(125),
                max_chats: k.max_chats.unwrap_or(4),
                category: k.category.clone().unwrap_or_else(|| "sales".into()),
                burst: k.burst.unwrap_or(500),
                rounds: k.rounds.unwrap_or(10),
                join_rate: k.join_rate.unwrap_or(10_000.0),
                burst_rounds: k.burst_rounds.unwrap_or(3),
                waiting: k.waiting.unwrap_or(10_000),
                waiting_category: "billing".into(),
                watch: watch.clone(),
            };
            let (figures, hist) = routing::run(&target, &stats, &cfg).await?;
            RunResult::from_stats(name, &shard, &stats, Some(&hist), figures)
        }
        Scenario::Queue => {
            let cfg = queue::Queue {
                waiting: k.waiting.unwrap_or(10_000),
                rounds: k.rounds.unwrap_or(20),
                category: k.category.clone().unwrap_or_else(|| "technical".into()),
                hub_pid: args.hub_pid,
                bare: k.bare.unwrap_or(false),
            };
            let (figures, hist) = queue::run(&target, &stats, &cfg).await?;
            RunResult::from_stats(name, &shard, &stats, Some(&hist), figures)
        }
    };
    stats.done.store(true, Relaxed);
    Ok(result)
}

/// Spawns `procs` children of this same command with `--shard i/n`, waits until
/// all are connected, reads the hub's memory, releases them and merges their results.
async fn fan_out(args: &RunArgs, k: &Knobs, name: &str) -> Result<RunResult, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let rss_before = args.hub_pid.and_then(hubinfo::rss_kib);
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut children = vec![];
    for i in 0..args.procs {
        let mut cmd = std::process::Command::new(&exe);
        // Same arguments, minus --procs/--out/--hub-pid, plus the shard.
        let mut skip = false;
        for a in &raw {
            if skip {
                skip = false;
                continue;
            }
            if ["--procs", "--out", "--hub-pid"].contains(&a.as_str()) {
                skip = true;
                continue;
            }
            if a.starts_with("--procs=") || a.starts_with("--out=") || a.starts_with("--hub-pid=") {
                continue;
            }
            cmd.arg(a);
        }
        cmd.arg("--shard").arg(format!("{i}/{}", args.procs));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        children.push(cmd.spawn().map_err(|e| format!("spawn child {i}: {e}"))?);
    }
    let _ = k;
    // Read each child's stdout on a thread: READY lines, then one RESULT line.
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut stdins = vec![];
    let mut waits = vec![];
    for (i, mut child) in children.into_iter().enumerate() {
        let out = child.stdout.take().expect("piped");
        stdins.push(child.stdin.take().expect("piped"));
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send((i, line));
            }
        });
        waits.push(child);
    }
    drop(tx);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let recv = |rx: &Arc<std::sync::Mutex<std::sync::mpsc::Receiver<(usize, String)>>>| {
        let rx = rx.clone();
        move || {
            rx.lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(300))
                .ok()
        }
    };
    let mut ready = 0;
    let mut placed = 0u64;
    let mut results = vec![];
    while ready < args.procs {
        match tokio::task::spawn_blocking(recv(&rx))
            .await
            .map_err(|e| e.to_string())?
        {
            Some((_, line)) if line.starts_with("READY") => {
                ready += 1;
                placed += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            Some((_, line)) if line.starts_with("RESULT ") => {
                results.push(serde_json::from_str::<RunResult>(&line[7..]).map_err(|e| e.to_string())?);
                ready += 1;
            }
            Some(_) => {}
            None => return Err("children stopped answering".into()),
        }
    }
    let rss_after = args.hub_pid.and_then(hubinfo::rss_kib);
    eprintln!(
        "all {} children ready: {placed} customers joined; hub VmRSS {rss_after:?} KiB",
        args.procs
    );
    for mut s in stdins {
        let _ = s.write_all(b"go\n");
    }
    while results.len() < args.procs {
        match tokio::task::spawn_blocking(recv(&rx))
            .await
            .map_err(|e| e.to_string())?
        {
            Some((_, line)) if line.starts_with("RESULT ") => {
                results.push(serde_json::from_str::<RunResult>(&line[7..]).map_err(|e| e.to_string())?);
            }
            Some(_) => {}
            None => break,
        }
    }
    for mut c in waits {
        let _ = c.wait();
    }
    let mut merged = RunResult::merge(&results, name);
    let mut figures = json!({ "processes": args.procs, "customers_target": k.customers, "customers_joined": placed });
    if let (Some(b), Some(a)) = (rss_before, rss_after) {
        figures["hub_rss_before_kib"] = json!(b);
        figures["hub_rss_after_kib"] = json!(a);
        if let Some(per) = (a.saturating_sub(b) * 1024).checked_div(placed) {
            figures["bytes_per_connection"] = json!(per);
        }
    }
    merged.figures = figures;
    if results.len() < args.procs {
        merged
            .notes
            .push(format!("only {} of {} children reported", results.len(), args.procs));
    }
    Ok(merged)
}
