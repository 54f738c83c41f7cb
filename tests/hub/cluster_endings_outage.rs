//! The router's read of an agent's endings (`RouterCall::ReadEndings`, sent before each
//! agent's coming online so their welcome tells how their chats ended) while Redis does not
//! answer. The router serialises the node's calls to Redis, so each read Redis leaves
//! unanswered holds every call queued behind it for a timeout (1 s). The read is skipped
//! while the node is no member (Redis down, fenced: the sign-in is refused anyway, and the
//! welcome tells what the node kept), and asked again only after a broken connection, not
//! after a timeout. Nor is the agent's display name written while the node is no member.
//!
//! What the router asked is counted, not timed: Redis frozen (SIGSTOP) keeps every command
//! sent to it in its sockets and runs them when woken (SIGCONT), in each connection's
//! order, and a `MONITOR` connection opened before the freeze then lists them. A marker
//! (another agent's read, behind them on the router's connection) says when the list is
//! complete.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;

use crate::cluster_fixture::{Servers, nodes, redis_shows};
use crate::common::{TestHub, Ws};
use crate::redis_server::RedisServer;
use switchboard::cluster::agent_endings;
use switchboard::store::SharedStore;

/// How long a test waits for something the node or Redis must do.
const WAIT: Duration = Duration::from_secs(30);

/// A `MONITOR` connection: every command Redis runs from its start, one line each
/// (`+<time> [<db> <client>] "<command>" "<argument>" …`).
struct Monitor(Lines<BufReader<TcpStream>>);

impl Monitor {
    async fn start(redis: &RedisServer) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", redis.port)).await.unwrap();
        stream.write_all(b"MONITOR\r\n").await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let ok = lines.next_line().await.unwrap();
        assert_eq!(ok.as_deref(), Some("+OK"), "MONITOR refused");
        Monitor(lines)
    }

    /// The commands Redis ran up to the first naming `marker`, that one included.
    async fn up_to(&mut self, marker: &str) -> Vec<String> {
        let mut ran = vec![];
        loop {
            let line = tokio::time::timeout(WAIT, self.0.next_line())
                .await
                .unwrap_or_else(|_| panic!("Redis never ran a command naming {marker}: {ran:#?}"))
                .unwrap()
                .expect("MONITOR goes on");
            let marked = line.contains(marker);
            ran.push(line);
            if marked {
                return ran;
            }
        }
    }
}

/// The id of the account `username` (the agent id their endings are kept under).
async fn agent_id(store: &SharedStore, username: &str) -> String {
    store.account_by_username(username).await.unwrap().id
}

/// The agent desk opened on `hub` with the session `token` while Redis does not answer:
/// refused (`cluster_unavailable`) and closed (1013).
async fn refused_desk(hub: &TestHub, token: &str) {
    let auth = format!("Bearer {token}");
    let mut desk = Ws::connect(&hub.ws_url("/ws/agent"), &[("authorization", &auth)])
        .await
        .unwrap();
    let first = desk
        .next_matching_within(WAIT, |f| f["type"] == "agent_welcome" || f["type"] == "error")
        .await;
    assert_eq!(first["code"], "cluster_unavailable", "{first}");
    assert_eq!(desk.closed_within(WAIT).await.map(u16::from), Some(1013), "{first}");
}

/// One node, "alpha", with agent accounts, and Redis's commands listed from then on.
struct Watched {
    alpha: TestHub,
    servers: Servers,
    /// The agents' session tokens, in the order named.
    tokens: Vec<String>,
    monitor: Monitor,
}

impl Watched {
    /// The node (its lease and renewal period as given), an agent account per name and
    /// the marker's ("dora"), and the monitor.
    async fn start(scratch: &str, (lease, renew): (Duration, Duration), names: &[&str]) -> Self {
        let ([alpha], servers) = nodes(scratch, ["alpha"], |s| {
            s.cluster.lease = lease;
            s.cluster.renew = renew;
        })
        .await;
        let mut tokens = vec![];
        for name in names.iter().chain([&MARKER]) {
            tokens.push(alpha.agent_account(name, &["general"], 1).await);
        }
        let monitor = Monitor::start(&servers.redis).await;
        Watched {
            alpha,
            servers,
            tokens,
            monitor,
        }
    }

    /// Once Redis is awake again: how many times Redis was asked each of `names`' endings,
    /// and to write each one's display name (for their customers' nodes, before their
    /// coming online), counted up to the marker's read, and the commands it ran until then.
    /// The marker signs in (welcomed), and the router sends that read behind everything it
    /// sent before, on its one connection.
    async fn endings_reads(mut self, names: &[&str]) -> (Vec<usize>, Vec<usize>, Vec<String>) {
        let marker_token = self.tokens.last().expect("the marker's token");
        let _welcomed = Ws::with_bearer(&self.alpha, "/ws/agent", marker_token, "agent_welcome").await;
        let marker = agent_endings::key(&agent_id(&self.servers.store, MARKER).await);
        let ran = self.monitor.up_to(&marker).await;
        let (mut reads, mut named) = (vec![], vec![]);
        for name in names {
            let id = agent_id(&self.servers.store, name).await;
            let read = format!("\"LRANGE\" \"{}\"", agent_endings::key(&id));
            reads.push(ran.iter().filter(|line| line.contains(&read)).count());
            let write = format!("\"HSET\" \"{{sb}}:agent-names\" \"{id}\"");
            named.push(ran.iter().filter(|line| line.contains(&write)).count());
        }
        self.alpha.stop().await;
        (reads, named, ran)
    }
}

/// The agent whose sign-in, once Redis is awake, marks the end of what was sent before.
const MARKER: &str = "dora";

/// Redis frozen and the node down (its lease kept, no longer a member): three agents sign
/// in, each refused. The router reads none of their endings. On the code before, it read
/// each twice (a second try after the first timed out), holding its queue 2 s per sign-in.
#[tokio::test]
async fn no_agents_endings_are_read_while_this_node_is_no_member() {
    let names = ["kim", "lou", "max"];
    let periods = (Duration::from_secs(30), Duration::from_millis(400));
    let watched = Watched::start("cluster-endings-no-member", periods, &names).await;
    let (alpha, redis) = (&watched.alpha, &watched.servers.redis);

    redis.pause();
    let health = redis_shows(alpha, "down").await;
    assert!(health["cluster"]["incarnation"].is_u64(), "the lease is kept: {health}");
    for token in &watched.tokens[..names.len()] {
        refused_desk(alpha, token).await;
    }
    redis.resume();
    redis_shows(alpha, "up").await;

    let (reads, named, ran) = watched.endings_reads(&names).await;
    assert_eq!(reads, [0, 0, 0], "read while the node was no member: {ran:#?}");
    // Nor their display names written (a timeout each, for a sign-in refused anyway).
    assert_eq!(named, [0, 0, 0], "names written while the node was no member: {ran:#?}");
}

/// Redis frozen while the node is still a member (its next renewal minutes away, so it
/// does not know yet): an agent signs in, and the router's read of their endings times out.
/// It is not asked again: one read. On the code before (and on the first fix, which took a
/// timeout for a broken connection), it was read twice, 2 s of the router's queue.
#[tokio::test]
async fn an_agents_endings_read_that_timed_out_is_not_asked_again() {
    let periods = (Duration::from_secs(600), Duration::from_secs(300));
    let watched = Watched::start("cluster-endings-timeout", periods, &["kim"]).await;
    let (alpha, redis) = (&watched.alpha, &watched.servers.redis);

    redis.pause();
    refused_desk(alpha, &watched.tokens[0]).await;
    let health = redis_shows(alpha, "up").await;
    assert!(health["cluster"]["incarnation"].is_u64(), "still a member: {health}");
    redis.resume();

    let (reads, _, ran) = watched.endings_reads(&["kim"]).await;
    assert_eq!(reads, [1], "kim's endings, read once: {ran:#?}");
}
