//! A micro-measure (not a test) of the cluster routing scripts on a local `redis-server`:
//! transitions per second and per-call latency seen by clients, and Redis's own CPU time
//! per script call (`INFO commandstats`), which bounds routing throughput on one shard.
//!
//! `cargo run --example routing_scripts_bench [customers]` (starts its own redis-server on a
//! free loopback port; needs `redis-server` installed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use switchboard::cluster::routing_scripts::RedisRouting;
use switchboard::core::routing::{AgentId, CategoryId, ChatId, Decision, Party};

// The routing tests' throwaway redis-server (free port, no persistence, killed on drop).
#[path = "../tests/cluster_routing/redis_server.rs"]
mod redis_server;

/// Concurrent callers, like many connections' events arriving on a few nodes at once.
const CALLERS: usize = 64;
const AGENTS: usize = 30;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, count: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{what}: {count} in {:.2} s = {:.0}/s; per call p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

/// Redis's own microseconds per routing call (`FCALL`, or `EVALSHA` where Redis has no
/// Functions) since the last reset.
async fn redis_usec_per_script(conn: &mut ConnectionManager) -> String {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_fcall:"))
        .or_else(|| info.lines().find(|l| l.starts_with("cmdstat_evalsha:")))
        .unwrap_or("cmdstat_fcall: none");
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query_async(conn).await.unwrap();
    line.to_string()
}

#[tokio::main]
async fn main() {
    let customers: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |n| n.parse().expect("a number of customers"));
    let server = redis_server::RedisServer::start();
    let mut conn = server.connect().await;
    // A node registered as the lease code would, with a lease long enough for the run.
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("{sb}:incarnation")
        .arg(1)
        .cmd("HSET")
        .arg("{sb}:nodes")
        .arg("n0")
        .arg(1)
        .cmd("ZADD")
        .arg("{sb}:leases")
        .arg(u64::MAX >> 12)
        .arg("n0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let routing = Arc::new(RedisRouting::new(conn.clone(), "n0", 1));
    let sales = CategoryId("sales".into());
    routing.add_category(&sales).await.unwrap();
    // Agents online but unavailable, so the queue fills.
    for a in 0..AGENTS {
        routing
            .agent_online(&AgentId(format!("agent{a}")), std::slice::from_ref(&sales), 4, false)
            .await
            .unwrap();
    }
    redis_usec_per_script(&mut conn).await;

    // 1. Joins into a growing queue.
    let started = Instant::now();
    let mut tasks = vec![];
    for caller in 0..CALLERS {
        let routing = routing.clone();
        let sales = sales.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            for _ in (caller..customers).step_by(CALLERS) {
                let t = Instant::now();
                routing.join(&sales).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = vec![];
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    report(
        &format!("join (queue grows to {customers})"),
        customers,
        started.elapsed(),
        latencies,
    );
    println!("  redis: {}", redis_usec_per_script(&mut conn).await);

    // 2. Agents become available: each takes 4 from the front.
    let mut chats: Vec<Vec<ChatId>> = vec![vec![]; AGENTS];
    for (a, held) in chats.iter_mut().enumerate() {
        let applied = routing
            .set_available(&AgentId(format!("agent{a}")), true)
            .await
            .unwrap();
        held.extend(applied.decisions.iter().filter_map(|d| match d {
            Decision::Paired { chat, .. } => Some(*chat),
            _ => None,
        }));
    }

    // 3. Churn: each chat that ends pairs the longest-waiting customer at once.
    let ends = customers.saturating_sub(AGENTS * 4) / 2;
    let started = Instant::now();
    let mut tasks = vec![];
    for (a, mut held) in chats.into_iter().enumerate() {
        let routing = routing.clone();
        let per_agent = ends / AGENTS;
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            for _ in 0..per_agent {
                let chat = held.remove(0);
                let t = Instant::now();
                let applied = routing.end_chat(chat, Party::Agent).await.unwrap();
                latencies.push(t.elapsed());
                let paired: Vec<ChatId> = applied
                    .decisions
                    .iter()
                    .filter_map(|d| match d {
                        Decision::Paired { chat, .. } => Some(*chat),
                        _ => None,
                    })
                    .collect();
                assert_eq!(paired.len(), 1, "agent{a}: an ended chat pairs the next customer");
                held.extend(paired);
            }
            latencies
        }));
    }
    let mut latencies = vec![];
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let done = latencies.len();
    report(
        "end_chat + pairing the next (30 agents x 4, long queue)",
        done,
        started.elapsed(),
        latencies,
    );
    println!("  redis: {}", redis_usec_per_script(&mut conn).await);
    drop(server);
}
