//! The cluster scenario's part of the benchmark report: routing across
//! three nodes, and the relay between nodes set beside one node's relay of the same
//! shape measured in the same run, as CPU per message of every process involved.
//!
//! CPU per message of the cluster counts the nodes and redis-server; the MongoDB-wire
//! server (secantusdb, the archive every node shares) is shown apart, as the single
//! node's default store is embedded in the hub and has no process of its own.

use serde_json::Value;

use crate::stats::RunResult;

/// One target row: scenario, target, measured, verdict.
pub type Row = (String, String, String, &'static str);

/// The result files of the cluster scenario.
pub const NAMES: [&str; 4] = [
    "cluster-routing",
    "cluster-routing-target",
    "cluster-relay",
    "cluster-relay-single",
];

/// The cluster's targets: redis-server's CPU a route, routes a second kept up with at a
/// latency, and the cross-node relay's CPU per message against one node's.
const REDIS_US_PER_ROUTE: f64 = 150.0;
const ROUTES_TARGET: f64 = 3_000.0;
const ROUTES_P99_MS: f64 = 100.0;
const RELAY_RATIO: f64 = 1.5;

/// Processes of the cluster whose CPU counts per message (secantusdb is reported apart).
const COUNTED: [&str; 4] = ["node1", "node2", "node3", "redis"];

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// CPU µs per message of the counted processes in a cluster step.
fn cluster_us(step: &Value) -> Option<f64> {
    let by = step["procs_cpu_us_per_msg"].as_object()?;
    Some(COUNTED.iter().filter_map(|n| by.get(*n).and_then(Value::as_f64)).sum())
}

fn steps(r: &RunResult) -> Vec<Value> {
    r.figures["steps"].as_array().cloned().unwrap_or_default()
}

fn text(v: Option<f64>) -> String {
    v.map_or("?".into(), |x| format!("{}", (x * 10.0).round() / 10.0))
}

/// The step pairs (cluster, single node) at the same target rate.
fn paired(cluster: &RunResult, single: &RunResult) -> Vec<(Value, Value)> {
    let single = steps(single);
    steps(cluster)
        .into_iter()
        .filter_map(|c| {
            let s = single
                .iter()
                .find(|s| s["target_msgs_per_sec"] == c["target_msgs_per_sec"])?
                .clone();
            Some((c, s))
        })
        .collect()
}

/// Target rows and the report's section for the cluster scenario (empty when it did not run).
pub fn build<'r>(get: &dyn Fn(&str) -> Option<&'r RunResult>) -> (Vec<Row>, String) {
    let mut rows = vec![];
    let mut md = String::new();
    if let Some(r) = get("cluster-routing") {
        let f = &r.figures;
        let rate = num(&f["routes_per_sec"]).unwrap_or(0.0);
        let redis_us = num(&f["procs_cpu_ms_per_1000_routes"]["redis"]);
        rows.push((
            "cluster routing capacity (3 nodes, agents on node 1, customers on nodes 2–3, joins offered faster than routed)".into(),
            format!("redis-server's CPU ≤ {REDIS_US_PER_ROUTE} µs a route, while 10k wait"),
            format!(
                "redis-server {} µs a route; {rate:.0} routes/s (joins offered at {}/s), join→both told p50 {} ms p99 {} ms, \
                 {} waiting meanwhile; all joins at once: {} routes/s (p99 {} ms); CPU ms per 1,000 routes {}",
                text(redis_us),
                f["join_rate_offered"],
                f["join_to_both_told_p50_ms"],
                f["join_to_both_told_p99_ms"],
                f["waiting_meanwhile"],
                f["burst_routes_per_sec"],
                f["burst_join_to_both_told_p99_ms"],
                f["procs_cpu_ms_per_1000_routes"]
            ),
            crate_verdict(redis_us.map(|us| us <= REDIS_US_PER_ROUTE)),
        ));
    }
    if let Some(r) = get("cluster-routing-target") {
        let f = &r.figures;
        let offered = num(&f["join_rate_offered"]).unwrap_or(0.0);
        let rate = num(&f["routes_per_sec"]).unwrap_or(0.0);
        let p99 = num(&f["join_to_both_told_p99_ms"]);
        let joins = num(&f["paced_rounds"]).unwrap_or(0.0) * num(&f["customers_per_round"]).unwrap_or(0.0);
        // The paced rounds' routes alone: a burst round's would hide a paced join lost.
        let routed: f64 = f["per_round"]
            .as_array()
            .map(|rounds| {
                rounds
                    .iter()
                    .filter(|r| r["paced"].as_bool() == Some(true))
                    .filter_map(|r| num(&r["routed"]))
                    .sum()
            })
            .unwrap_or(0.0);
        // Kept up: every join offered at the pace was routed, within the latency. (Its
        // routes/s, a round's customers over first join → last pair told, stays under the
        // pace by the last pair's latency, so it is shown, not judged.)
        let kept_up = offered >= ROUTES_TARGET && joins > 0.0 && routed >= joins;
        rows.push((
            format!("cluster routing at {offered:.0} joins/s (3 nodes, agents on node 1, customers on nodes 2–3)"),
            format!("≥ {ROUTES_TARGET:.0} routes/s with 10k waiting, join→both told p99 ≤ {ROUTES_P99_MS:.0} ms"),
            format!(
                "{routed:.0} of {joins:.0} joins routed ({rate:.0} routes/s from each round's first join to its last pair told), \
                 join→both told p50 {} ms p99 {} ms, {} waiting meanwhile; CPU ms per 1,000 routes {}",
                f["join_to_both_told_p50_ms"],
                f["join_to_both_told_p99_ms"],
                f["waiting_meanwhile"],
                f["procs_cpu_ms_per_1000_routes"]
            ),
            crate_verdict(p99.map(|p| kept_up && p <= ROUTES_P99_MS)),
        ));
    }
    let (Some(c), Some(s)) = (get("cluster-relay"), get("cluster-relay-single")) else {
        if let Some(c) = get("cluster-relay") {
            md.push_str("\n## Cluster relay\n\nThe single-node comparison did not run.\n");
            md.push_str(&steps_table(
                &steps(c).into_iter().map(|c| (c, Value::Null)).collect::<Vec<_>>(),
            ));
        }
        return (rows, md);
    };
    let pairs = paired(c, s);
    let ratios: Vec<f64> = pairs
        .iter()
        .filter_map(|(c, s)| Some(cluster_us(c)? / num(&s["cpu_us_per_msg"]).filter(|x| *x > 0.0)?))
        .collect();
    let worst = ratios
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
    rows.push((
        "cluster relay: CPU per message, 100 chats with sides on different nodes".into(),
        format!("at most {RELAY_RATIO}× the single-node path's CPU per message (same run)"),
        format!(
            "nodes + redis-server against one node, per step: {} (secantusdb apart, see the section)",
            pairs
                .iter()
                .map(|(c, s)| format!(
                    "{} msg/s {} µs vs {} µs",
                    c["target_msgs_per_sec"],
                    text(cluster_us(c)),
                    text(num(&s["cpu_us_per_msg"]))
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        crate_verdict(worst.map(|w| w <= RELAY_RATIO)),
    ));
    md.push_str(
        "\n## Cluster relay against one node\n\n100 chats, agents on node 1 and customers on nodes 2–3 (every message crosses \
         nodes through redis-server), beside one node in its default configuration (embedded store) with the same loadgen \
         and shape. Nothing pinned. CPU % is of one core over the step; µs/msg divides the processes' CPU by the messages sent. \
         The cluster's µs/msg counts the three nodes and redis-server; secantusdb (the shared MongoDB-wire archive, a Python \
         server) is its own column.\n\n",
    );
    md.push_str(&steps_table(&pairs));
    (rows, md)
}

fn crate_verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "meets",
        Some(false) => "**falls short**",
        None => "not measured",
    }
}

fn steps_table(pairs: &[(Value, Value)]) -> String {
    let mut md = String::from(
        "| target msg/s | cluster sent/s | p50 / p99 ms | node1 / node2 / node3 / redis / secantusdb CPU % | cluster µs/msg (nodes + redis) | secantusdb µs/msg | one node sent/s | p50 / p99 ms | hub CPU % | one node µs/msg | ratio |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (c, s) in pairs {
        let pc = &c["procs_cpu_percent"];
        let cpu = ["node1", "node2", "node3", "redis", "mongo"]
            .iter()
            .map(|n| text(num(&pc[*n])))
            .collect::<Vec<_>>()
            .join(" / ");
        let cu = cluster_us(c);
        let su = num(&s["cpu_us_per_msg"]);
        let ratio = match (cu, su) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "?".into(),
        };
        md.push_str(&format!(
            "| {} | {} | {} / {} | {cpu} | {} | {} | {} | {} / {} | {} | {} | {ratio} |\n",
            c["target_msgs_per_sec"],
            c["sent_per_sec"],
            c["p50_ms"],
            c["p99_ms"],
            text(cu),
            text(num(&c["procs_cpu_us_per_msg"]["mongo"])),
            s["sent_per_sec"],
            s["p50_ms"],
            s["p99_ms"],
            text(num(&s["procs_cpu_percent"]["hub"])),
            text(su),
        ));
    }
    md
}
