#!/usr/bin/env bash
# Release-build benchmarks of Switchboard (`make bench`). For each scenario it starts
# the hub on a free loopback port with the settings the scenario needs, runs the
# loadgen against it, stops the hub, and finally writes bench/results/latest.md and
# latest.json (plus dated copies). Scenarios are described in bench/README.md.
#
# It never asserts figures: it fails only when the hub or the loadgen crashed, or
# the loadgen found a wrong, duplicate or missing message.
#
# The hub runs in its default configuration: no STORE (so the embedded store), in a
# fresh DATA_DIR per start, acknowledging each message once it is committed. Only its
# client limits are raised (a load generator's client sends far faster than a person);
# `STORE=memory` appears only as the peers scenario's comparison row.
#
#   BENCH_SCENARIOS="peers uploads idle relay routing queue archive reports queries cluster"   which to run (default all but
#                                                        `soak`, which is an hour long: add it by name)
#   BENCH_QUICK=1                                        small counts, for a smoke run
#   BENCH_ARCHIVE_STORES="embedded mongodb"              stores for the archive scenario
#   BENCH_SOAK_SECS=3600                                 the soak's seconds of traffic (BENCH_QUICK: 120)
#   BENCH_QUERIES_CONVERSATIONS=100000                   the archive the queries scenario searches (BENCH_QUICK: 5000)
#   BENCH_PEERS_SERVERS="default memory mongodb node bare"  the peers scenario's servers (the headline
#                                                        comparison is "default node bare")
#   BENCH_PEERS_STEP_SECS=10                             the peers scenario's seconds a step (BENCH_QUICK: 2)
#   BENCH_HUB_BIN=target/release/switchboard             the hub to run (another build: an A/B in one sitting)
#   BENCH_SKIP_BUILD=1                                   run the release binaries already built (the
#                                                        rounds of an A/B after the first), not a fresh build
#
# The runs go in a session of their own whose scheduling group is set to nice -20, as
# scripts/bench-floor.sh does: the kernel groups processes by session (autogroup), so builds
# that other sessions run beside the bench would otherwise take the hub's core at equal
# weight. The release build runs first, in the caller's session, so it does not take that
# group's priority. Setting the group needs root; without it the runs go on at the default.
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ -z "${BENCH_SESSION:-}" ]; then
  if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "bench: building release binaries"
    cargo build --release --workspace
  fi
  BENCH_SESSION=1 BENCH_BUILT=1 exec setsid --wait "$SELF" "$@"
fi
echo -20 >/proc/self/autogroup 2>/dev/null ||
  echo "bench: could not set this session's scheduling group to nice -20 (needs root): other sessions' work competes with the runs" >&2

SCENARIOS=${BENCH_SCENARIOS:-"peers uploads idle relay routing queue archive reports queries cluster"}
ARCHIVE_STORES=${BENCH_ARCHIVE_STORES:-"embedded mongodb"}
QUICK=${BENCH_QUICK:-0}
PEERS_SERVERS=" ${BENCH_PEERS_SERVERS:-default memory mongodb node bare} "
# peer_wanted SERVER: whether the peers scenario runs that server this time.
peer_wanted() { [[ $PEERS_SERVERS == *" $1 "* ]]; }
RESULTS=$ROOT/bench/results
RUN=$(mktemp -d /tmp/switchboard-bench.XXXXXX)
# BENCH_HUB_BIN: another build of the hub to run instead (an A/B of two binaries in one sitting),
# relative to the repository's root or absolute.
HUB_BIN=$(realpath -m "${BENCH_HUB_BIN:-$ROOT/target/release/switchboard}")
LG_BIN=$ROOT/target/release/loadgen
export LOADGEN_ADMIN_PASSWORD=bench-admin-pass
failures=()
notes=$RUN/notes.md
: >"$notes"

# The hub holds ~19,500 sockets and each loadgen process up to 20,000.
ulimit -n 20000 || { echo "bench: cannot raise the open-file limit to 20000" >&2; exit 1; }

# Idle and long-queue connections need a deep accept backlog to connect quickly; informational only.
echo "bench: somaxconn=$(cat /proc/sys/net/core/somaxconn) ephemeral ports=$(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)"

if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
  echo "bench: BENCH_SKIP_BUILD=1: running the release binaries already built"
fi
# Built before this session started (above), unless BENCH_SKIP_BUILD.
[ -x "$HUB_BIN" ] && [ -x "$LG_BIN" ] || { echo "bench: $HUB_BIN or $LG_BIN is missing: build them first" >&2; exit 1; }
echo "- scheduling: the runs in a session of their own, its group at nice $(awk '{print $NF}' /proc/self/autogroup 2>/dev/null || echo '?') (\`/proc/self/autogroup\`)." >>"$notes"
# Which hub ran, so the reports of an A/B can be told apart.
echo "- hub: \`${HUB_BIN#"$ROOT"/}\`, sha256 $(sha256sum "$HUB_BIN" | cut -c1-16)." >>"$notes"

# The peers scenario's Node ws relay (bench/ws-relay.js): its one npm package, from the committed lock.
if [[ " $SCENARIOS " == *" peers "* ]]; then
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "bench: the peers scenario runs bench/ws-relay.js and needs node (>= 18) and npm" >&2
    exit 1
  fi
  echo "bench: installing bench/node_modules (npm ci)"
  (cd bench && npm ci --no-audit --no-fund --loglevel=error) || { echo "bench: npm ci in bench/ failed" >&2; exit 1; }
  echo "- peers: Node $(node --version), ws $(node -p "require('./bench/node_modules/ws/package.json').version")." >>"$notes"
fi

# The client limits every hub run raises: rate limits and outbound queue sized for a load
# generator's clients (hundreds of messages a second per socket), not a person's. Nothing else
# differs from the defaults; the archive buffer, the store and its durability are the defaults.
CLIENT_LIMITS=(RATE_LIMIT_PER_SEC=100000 RATE_LIMIT_BURST=100000 OUTBOUND_BUFFER=65536)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

HUB_PID=
HUB_PORT=
# The running hub's fresh data directory (empty for the relays, which have none).
HUB_DATA=
# start_hub NAME CPU [VAR=value...]: starts the hub pinned to CPU (or "any"), waits for /healthz.
# No STORE unless a scenario passes one: the default, the embedded store, in a fresh DATA_DIR.
start_hub() {
  local name=$1 cpu=$2
  shift 2
  HUB_PORT=$(free_port)
  HUB_DATA=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench-data.XXXXXX")
  local pin=()
  [ "$cpu" != any ] && pin=(taskset -c "$cpu")
  env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$HUB_PORT" ADMIN_USERNAME=admin \
    ADMIN_PASSWORD="$LOADGEN_ADMIN_PASSWORD" RUST_LOG=warn DATA_DIR="$HUB_DATA" MAX_CONNECTIONS_PER_ADDRESS=1000000 "$@" \
    "${pin[@]}" "$HUB_BIN" serve >"$RUN/$name.hub.log" 2>&1 &
  HUB_PID=$!
  # /readyz, not /healthz: a hub on MongoDB answers /healthz with "starting" (200) until
  # its store is open, and /readyz only once it serves. Up to 30 s (MongoDB's start).
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$HUB_PORT/readyz" >/dev/null 2>&1; then
      echo "bench: [$name] hub pid $HUB_PID on port $HUB_PORT ($*)"
      return 0
    fi
    if ! kill -0 "$HUB_PID" 2>/dev/null; then
      echo "bench: [$name] the hub did not start:" >&2
      cat "$RUN/$name.hub.log" >&2
      failures+=("$name: hub failed to start")
      rm -rf "$HUB_DATA"
      return 1
    fi
    sleep 0.05
  done
  failures+=("$name: hub not healthy")
  kill -KILL "$HUB_PID" 2>/dev/null || true
  rm -rf "$HUB_DATA"
  return 1
}

# wait_listening NAME WHAT: waits for HUB_PORT to accept connections.
wait_listening() {
  local name=$1 what=$2
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $HUB_PORT), 0.2)" 2>/dev/null; then
      echo "bench: [$name] $what pid $HUB_PID on port $HUB_PORT"
      return 0
    fi
    sleep 0.05
  done
  cat "$RUN/$name.hub.log" >&2
  failures+=("$name: the $what did not start")
  return 1
}

# start_bare NAME CPU: starts `loadgen bare-relay` (the relay's and the long queue's floor) like a hub, pinned to CPU.
start_bare() {
  local name=$1 cpu=$2
  HUB_PORT=$(free_port)
  HUB_DATA=
  taskset -c "$cpu" "$LG_BIN" bare-relay --bind "127.0.0.1:$HUB_PORT" >"$RUN/$name.hub.log" 2>&1 &
  HUB_PID=$!
  wait_listening "$name" "bare relay"
}

# start_node NAME CPU: starts the Node ws relay (bench/ws-relay.js) like a hub, pinned to CPU
# (taskset execs node, so HUB_PID is node's own pid and its CPU time is read from it).
start_node() {
  local name=$1 cpu=$2
  HUB_PORT=$(free_port)
  HUB_DATA=
  taskset -c "$cpu" node bench/ws-relay.js "127.0.0.1:$HUB_PORT" >"$RUN/$name.hub.log" 2>&1 &
  HUB_PID=$!
  wait_listening "$name" "Node ws relay"
}

# note_data_dir NAME: notes how much the run left in the hub's DATA_DIR, per acknowledged
# message, and removes the directory.
note_data_dir() {
  local name=$1
  [ -n "$HUB_DATA" ] && [ -d "$HUB_DATA" ] || return 0
  local bytes fs acked backend
  bytes=$(du -sb "$HUB_DATA" | cut -f1)
  fs=$(df --output=fstype "$HUB_DATA" | tail -1 | tr -d ' ')
  read -r acked backend < <(python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["figures"]; print(int(f.get("messages_acknowledged") or 0), f.get("store_backend") or "?")' \
    "$RUN/$name.json" 2>/dev/null || echo "0 ?")
  local each=""
  [ "${acked:-0}" -gt 0 ] && [ "$backend" != memory ] && each=", ~$((bytes / acked)) bytes per message (the store's fixed overhead included)"
  echo "- $name: DATA_DIR ($fs; store \`$backend\`) holds $bytes bytes after ${acked:-0} acknowledged messages$each." >>"$notes"
  rm -rf "$HUB_DATA"
  HUB_DATA=
}

# stop_hub NAME: SIGTERM and wait; a hub that is already gone crashed.
stop_hub() {
  local name=$1
  if ! kill -0 "$HUB_PID" 2>/dev/null; then
    echo "bench: [$name] THE HUB CRASHED; log tail:" >&2
    tail -20 "$RUN/$name.hub.log" >&2
    failures+=("$name: hub crashed")
    wait "$HUB_PID" 2>/dev/null || true
    note_data_dir "$name"
    return
  fi
  kill -TERM "$HUB_PID"
  for _ in $(seq 1 300); do
    kill -0 "$HUB_PID" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$HUB_PID" 2>/dev/null; then
    echo "bench: [$name] hub did not stop within 15 s; killing it" >&2
    kill -KILL "$HUB_PID" 2>/dev/null || true
  fi
  wait "$HUB_PID" 2>/dev/null || true
  note_data_dir "$name"
}

# start_mongo_wire NAME: a MongoDB-wire server (secantusdb, in memory) on the port the
# kernel picks, named by its own "listening on" line; sets MONGO_WIRE_PID and MONGO_WIRE_PORT.
start_mongo_wire() {
  if [ ! -x .venv/bin/secantusd-py ]; then scripts/ensure-test-deps.sh; fi
  local log="$RUN/$1-mongo.log"
  .venv/bin/secantusd-py --port 0 --storage-path :memory: >"$log" 2>&1 &
  MONGO_WIRE_PID=$!
  MONGO_WIRE_PORT=
  for _ in $(seq 1 300); do
    MONGO_WIRE_PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    [ -n "$MONGO_WIRE_PORT" ] && return 0
    kill -0 "$MONGO_WIRE_PID" 2>/dev/null || break
    sleep 0.1
  done
  failures+=("$1: secantusdb did not start (see $log)")
  return 1
}

# loadgen NAME CPU ARGS...: runs one scenario; exit 3 means delivery checks failed.
loadgen() {
  local name=$1 cpu=$2
  shift 2
  local pin=()
  [ "$cpu" != any ] && pin=(taskset -c "$cpu")
  local rc=0
  "${pin[@]}" "$LG_BIN" run "$@" --hub "127.0.0.1:$HUB_PORT" --hub-pid "$HUB_PID" \
    --out "$RUN/$name.json" 2> >(tee "$RUN/$name.loadgen.log" >&2) || rc=$?
  case $rc in
    0) ;;
    3) failures+=("$name: the loadgen found wrong, duplicate or missing messages") ;;
    *) failures+=("$name: the loadgen failed (exit $rc)") ;;
  esac
}

# The cluster scenario's processes: redis-server, secantusdb and three nodes sharing them.
REDIS_PID= MONGO_PID= REDIS_PORT=
NODE_PIDS=() NODE_PORTS=() CLUSTER_DATA=()
# wait_port PORT NAME PID: waits for a cluster process to listen.
wait_port() {
  for _ in $(seq 1 150); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "bench: [cluster] $2 died:" >&2; tail -20 "$RUN/cluster-$2.log" >&2; return 1; }
    sleep 0.2
  done
  echo "bench: [cluster] $2 did not listen on port $1" >&2
  return 1
}
start_cluster() {
  if [ ! -x .venv/bin/secantusd-py ] || ! command -v redis-server >/dev/null; then scripts/ensure-test-deps.sh; fi
  local rport mport secret
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >"$RUN/cluster-redis.log" 2>&1 &
  REDIS_PID=$! REDIS_PORT=$rport
  wait_port "$rport" redis "$REDIS_PID" || { failures+=("cluster: redis-server did not start"); stop_cluster; return 1; }
  mport=$(free_port)
  .venv/bin/secantusd-py --port "$mport" --storage-path :memory: >"$RUN/cluster-mongo.log" 2>&1 &
  MONGO_PID=$!
  wait_port "$mport" mongo "$MONGO_PID" || { failures+=("cluster: secantusdb did not start"); stop_cluster; return 1; }
  secret=$(head -c 32 /dev/urandom | base64 | tr -d '\n=')
  NODE_PIDS=() NODE_PORTS=() CLUSTER_DATA=()
  # Node 1 first: it creates the first admin and the categories in the shared store.
  for n in 1 2 3; do
    local port data
    port=$(free_port)
    data=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-bench-node$n.XXXXXX")
    env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$port" ADMIN_USERNAME=admin \
      ADMIN_PASSWORD="$LOADGEN_ADMIN_PASSWORD" RUST_LOG=warn DATA_DIR="$data" MAX_CONNECTIONS_PER_ADDRESS=1000000 \
      MAX_CONNECTIONS=19500 STORE=mongodb MONGODB_URI="mongodb://127.0.0.1:$mport" MONGODB_DB=bench-cluster \
      REDIS_URL="redis://127.0.0.1:$rport" NODE_ID="node$n" ROOM_TOKEN_SECRET="$secret" "${CLIENT_LIMITS[@]}" \
      "$HUB_BIN" serve >"$RUN/cluster-node$n.log" 2>&1 &
    NODE_PIDS+=($!) NODE_PORTS+=("$port") CLUSTER_DATA+=("$data")
    wait_port "$port" "node$n" "$!" || { failures+=("cluster: node$n did not start"); stop_cluster; return 1; }
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  echo "bench: [cluster] redis $REDIS_PID:$rport, secantusdb $MONGO_PID:$mport, nodes ${NODE_PIDS[*]} on ${NODE_PORTS[*]}"
  echo "- cluster: 3 nodes (STORE=mongodb on secantusdb, REDIS_URL on one redis-server $(redis-server --version | grep -o 'v=[0-9.]*')), none pinned; agents on node 1, customers on nodes 2 and 3." >>"$notes"
}
# redis_cpu_per_route NAME: a note line with redis-server's time per route by command (INFO
# commandstats over the routing rounds; every script is one `evalsha` row, and the commands a
# script runs are counted again in their own rows) and the calls per route.
redis_cpu_per_route() {
  python3 - "$RUN/$1.redis-commandstats.txt" "$RUN/$1.json" <<'PY'
import json, re, sys
stats, result = sys.argv[1], sys.argv[2]
try:
    routes = json.load(open(result))["figures"]["routes"]
except Exception:
    sys.exit(0)
rows = []
for line in open(stats):
    m = re.match(r"cmdstat_(\S+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)", line)
    # The sampler's own SLOWLOG and CONFIG calls are not routing's.
    if m and not m[1].startswith(("slowlog", "config")):
        rows.append((int(m[3]), m[1], int(m[2]), float(m[4])))
rows.sort(reverse=True)
total = sum(r[0] for r in rows)
if not routes or not total:
    sys.exit(0)
parts = ", ".join(f"{name} {usec / routes:.0f} µs ({calls / routes:.1f} calls of {per:.0f} µs)" for usec, name, calls, per in rows[:6])
print(f"- cluster-routing: redis-server's command time per route over the routing rounds (INFO commandstats, {routes} routes; a script's commands count in its `evalsha` row and again in their own): {parts}.")
PY
}
# await_in_log NAME TEXT: waits (up to 5 min) for TEXT in NAME's loadgen log.
await_in_log() {
  for _ in $(seq 1 1500); do grep -q -- "$2" "$RUN/$1.loadgen.log" 2>/dev/null && return 0; sleep 0.2; done
  return 1
}
# slowlog_sample NAME: logs every command redis-server runs for 2 s (SLOWLOG at threshold
# 0) into $RUN/NAME.redis-slowlog.txt, for scripts/redis_script_costs.py to say which
# script costs what.
slowlog_sample() {
  redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-max-len 1000000 >/dev/null
  redis-cli -p "$REDIS_PORT" SLOWLOG RESET >/dev/null
  redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-log-slower-than 0 >/dev/null
  sleep 2
  redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-log-slower-than 10000 >/dev/null
  redis-cli -p "$REDIS_PORT" SLOWLOG GET 1000000 >"$RUN/$1.redis-slowlog.txt"
}
# sample_redis_routing NAME: follows the routing loadgen's log. Over its rounds only (from
# the first to the closing, so the 10,000 who wait joining beforehand are left out) it keeps
# redis-server's per-command counters (INFO commandstats) in $RUN/NAME.redis-commandstats.txt,
# and samples the SLOWLOG from the third round.
sample_redis_routing() {
  await_in_log "$1" 'round 1/' || return 0
  redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  await_in_log "$1" 'round 3/' || return 0
  slowlog_sample "$1"
  await_in_log "$1" '-- closing' || return 0
  redis-cli -p "$REDIS_PORT" INFO commandstats >"$RUN/$1.redis-commandstats.txt"
}
# await_archives PORT...: waits (up to 60 s) until each hub on these ports reports an empty
# archive backlog on /healthz, so what the last run left to archive does not load the next.
await_archives() {
  local port backlog
  for _ in $(seq 1 300); do
    backlog=0
    for port in "$@"; do
      backlog=$((backlog + $(curl -sf "http://127.0.0.1:$port/healthz" | python3 -c 'import json,sys; print(int(json.load(sys.stdin).get("archive_backlog") or 0))' 2>/dev/null || echo 1)))
    done
    [ "$backlog" = 0 ] && return 0
    sleep 0.2
  done
  echo "- cluster: the nodes' archives still held $backlog events after 60 s." >>"$notes"
}
# stop_cluster: SIGTERM to every node, then redis-server and secantusdb; a node already gone crashed.
stop_cluster() {
  local i
  for i in "${!NODE_PIDS[@]}"; do
    if ! kill -0 "${NODE_PIDS[$i]}" 2>/dev/null; then
      echo "bench: [cluster] node$((i + 1)) CRASHED; log tail:" >&2
      tail -20 "$RUN/cluster-node$((i + 1)).log" >&2
      failures+=("cluster: node$((i + 1)) crashed")
    fi
    kill -TERM "${NODE_PIDS[$i]}" 2>/dev/null || true
  done
  for i in "${!NODE_PIDS[@]}"; do
    for _ in $(seq 1 300); do kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "${NODE_PIDS[$i]}" 2>/dev/null || true
    wait "${NODE_PIDS[$i]}" 2>/dev/null || true
  done
  for pid in $REDIS_PID $MONGO_PID; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "${CLUSTER_DATA[@]}"
  NODE_PIDS=() NODE_PORTS=() CLUSTER_DATA=() REDIS_PID= MONGO_PID=
}

q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }

for scenario in $SCENARIOS; do
  case $scenario in
    peers)
      # The shape: one chat per agent (each agent's limit 1), 100-byte messages, both sides
      # sending, 10 s a step, at 100 and 500 chats (200 and 1,000 sockets). Five servers in turn on
      # CPU 0, the loadgen on CPU 1: the hub as people run it (default store, durable
      # acknowledgements), the hub with STORE=memory (a comparison only), the hub with
      # STORE=mongodb (on secantusdb, unpinned), the Node ws relay
      # (bench/ws-relay.js: forwards, acknowledges nothing) and the bare floor. The report sets
      # them side by side with the ratios hub / Node ws / floor.
      rates=$(q 1000,5000,10000,20000,40000,60000,80000,100000,120000 1000,5000,10000)
      for chats in $(q "100 500" 100); do
        shape=(relay --chats "$chats" --max-chats 1 --msg-size 100 --step-secs "${BENCH_PEERS_STEP_SECS:-$(q 10 2)}" --rates "$rates")
        name=peers-$chats
        if peer_wanted default && start_hub "$name-default" 0 "${CLIENT_LIMITS[@]}"; then
          loadgen "$name-default" 1 "${shape[@]}"
          stop_hub "$name-default"
        fi
        if peer_wanted memory && start_hub "$name-memory" 0 "${CLIENT_LIMITS[@]}" STORE=memory; then
          loadgen "$name-memory" 1 "${shape[@]}"
          stop_hub "$name-memory"
        fi
        # The hub on MongoDB (durable acknowledgements: written to the server), for its CPU
        # per message beside the memory store's; secantusdb itself runs unpinned.
        if peer_wanted mongodb && start_mongo_wire "$name-mongodb"; then
          if start_hub "$name-mongodb" 0 "${CLIENT_LIMITS[@]}" STORE=mongodb \
            MONGODB_URI="mongodb://127.0.0.1:$MONGO_WIRE_PORT" MONGODB_DB=bench; then
            loadgen "$name-mongodb" 1 "${shape[@]}"
            stop_hub "$name-mongodb"
          fi
          kill "$MONGO_WIRE_PID" 2>/dev/null || true
          wait "$MONGO_WIRE_PID" 2>/dev/null || true
        fi
        if peer_wanted node && start_node "$name-node" 0; then
          loadgen "$name-node" 1 "${shape[@]}" --bare true --acks false
          stop_hub "$name-node"
        fi
        if peer_wanted bare && start_bare "$name-bare" 0; then
          loadgen "$name-bare" 1 "${shape[@]}" --bare true
          stop_hub "$name-bare"
        fi
      done
      ;;
    uploads)
      # The relay while files upload: the default hub at 100 chats (the peers shape), run
      # once without uploads and once with 20 files of 10 MB uploading at every moment over
      # HTTP (each uploader starting its next file as one is answered, each file to the next
      # chat, every file different so each is written and synced), both pinned to CPU 0 and
      # the loadgen to CPU 1. Only the quotas are raised: the day's 5 GB would end the run.
      rates=$(q 1000,5000,10000,20000 1000,5000)
      # Every step runs (no stop at a p99 over 50 ms): the table compares them all.
      shape=(relay --chats 100 --max-chats 1 --msg-size 100 --step-secs "$(q 5 2)" --rates "$rates" --stop-p99-ms 100000)
      UPLOAD_QUOTAS=(ATTACHMENT_CONVERSATION_MAX_BYTES=$((1 << 40)) ATTACHMENT_DAY_MAX_BYTES=$((1 << 50)))
      if start_hub uploads-off 0 "${CLIENT_LIMITS[@]}" "${UPLOAD_QUOTAS[@]}"; then
        loadgen uploads-off 1 "${shape[@]}"
        stop_hub uploads-off
      fi
      if start_hub uploads-on 0 "${CLIENT_LIMITS[@]}" "${UPLOAD_QUOTAS[@]}"; then
        loadgen uploads-on 1 "${shape[@]}" --uploads "$(q 20 4)" --upload-bytes 10000000
        stop_hub uploads-on
      fi
      ;;
    idle)
      # As many waiting customers as one hub holds, over 4 processes and 40 source addresses.
      if start_hub idle any MAX_CONNECTIONS=19500; then
        loadgen idle any idle --customers "$(q 19000 2000)" --procs 4 --sources 127.0.0.2-127.0.0.41
        stop_hub idle
      fi
      ;;
    relay)
      # 1-to-1 chats at rising rates; hub on CPU 0, loadgen on CPU 1. Two shapes: 500 chats
      # (125 agents × 4, 625 sockets) and 100 chats (25 × 4, 125 sockets). Each is also run
      # against `loadgen bare-relay`, a relay with none of the hub's work, as the floor.
      rates="1000,5000,10000,20000,40000,60000,80000,100000,120000"
      for chats in 500 100; do
        name=relay
        [ "$chats" != 500 ] && name=relay-$chats
        if start_hub "$name" 0 "${CLIENT_LIMITS[@]}"; then
          loadgen "$name" 1 relay --chats "$(q $chats 100)" --step-secs "$(q 5 2)" --rates "$rates"
          stop_hub "$name"
        fi
        if start_bare "$name-bare" 0; then
          loadgen "$name-bare" 1 relay --bare true --chats "$(q $chats 100)" --step-secs "$(q 5 2)" --rates "$rates"
          stop_hub "$name-bare"
        fi
      done
      ;;
    routing)
      # Rounds of 500 customers onto 125 free agents × 4 while 10,000 wait in another queue:
      # 10 rounds with joins paced at 12,000/s (the latency figure), then 3 with all joins at once.
      # OUTBOUND_BUFFER: with the default 256 the hub kicks busy agents (1008) during a burst,
      # as every join sends queue_stats to every agent of the category (see bench/README.md).
      if start_hub routing 0 MAX_CONNECTIONS=19500 OUTBOUND_BUFFER=8192; then
        loadgen routing 1 routing --agents "$(q 125 25)" --burst "$(q 500 100)" --rounds 10 \
          --join-rate 12000 --burst-rounds 3 --waiting "$(q 10000 1000)"
        stop_hub routing
      fi
      ;;
    queue)
      # 10,000 waiting in one category, one agent taking them one by one; then the same
      # against `loadgen bare-relay`'s line, which only formats and writes the places, as the floor.
      if start_hub queue 0 MAX_CONNECTIONS=19500; then
        loadgen queue 1 queue --waiting "$(q 10000 1000)" --rounds 20
        stop_hub queue
      fi
      if start_bare queue-bare 0; then
        loadgen queue-bare 1 queue --bare true --waiting "$(q 10000 1000)" --rounds 20
        stop_hub queue-bare
      fi
      ;;
    archive)
      for store in $ARCHIVE_STORES; do
        extra=()
        mongo_pid=
        case $store in
          embedded)
            # start_hub gives it a fresh DATA_DIR.
            extra=(STORE=embedded)
            ;;
          mongodb)
            start_mongo_wire "archive" || continue
            mongo_pid=$MONGO_WIRE_PID
            extra=(STORE=mongodb MONGODB_URI="mongodb://127.0.0.1:$MONGO_WIRE_PORT" MONGODB_DB=bench)
            ;;
          *) extra=(STORE="$store") ;;
        esac
        if start_hub "archive-$store" 0 RATE_LIMIT_PER_SEC=100000 RATE_LIMIT_BURST=100000 \
          OUTBOUND_BUFFER=65536 ARCHIVE_BUFFER=1000000 "${extra[@]}"; then
          backend=$(curl -s "http://127.0.0.1:$HUB_PORT/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["store"])')
          if [ "$backend" != "$store" ] && ! { [ "$store" = mongodb ] && [[ $backend == *mongo* ]]; }; then
            echo "- archive-$store: the hub started with STORE=$store reports store \`$backend\`: that backend is not real yet, so this run measured \`$backend\`." >>"$notes"
          fi
          loadgen "archive-$store" 1 archive --chats "$(q 500 100)" --rates "$(q 25000 5000)" --step-secs "$(q 10 3)"
          stop_hub "archive-$store"
        fi
        [ -n "$mongo_pid" ] && { kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true; }
      done
      ;;
    queries)
      # Searches (and, later, reports) over a large archive, straight through the Store API:
      # examples/archive_queries_bench.rs archives the generated conversations into the
      # embedded store and into a MongoDB-wire server (secantusdb), then times each query
      # kind (median of 5); its Markdown section goes into the report's notes.
      cargo build --release --example archive_queries_bench
      if start_mongo_wire queries; then
        if ! "$ROOT/target/release/examples/archive_queries_bench" \
          --conversations "${BENCH_QUERIES_CONVERSATIONS:-$(q 100000 5000)}" \
          --mongodb-uri "mongodb://127.0.0.1:$MONGO_WIRE_PORT" --out "$RUN/queries.md" \
          2> >(tee "$RUN/queries.log" >&2); then
          failures+=("queries: the archive queries bench failed")
        fi
        kill "$MONGO_WIRE_PID" 2>/dev/null || true
        wait "$MONGO_WIRE_PID" 2>/dev/null || true
        [ -s "$RUN/queries.md" ] && cat "$RUN/queries.md" >>"$notes"
      fi
      ;;
    cluster)
      # Several nodes through Redis: 3 nodes, one redis-server and one MongoDB-wire server (secantusdb) on this
      # machine, none pinned (two cores for five processes and the loadgen). Agents on node 1,
      # customers on nodes 2 and 3 in turn, so every chat crosses nodes. Then the same relay
      # shape against one node in its default configuration, in the same run, for the ratio of
      # CPU per message. Each row reports the CPU of every node, redis-server and secantusdb.
      start_cluster || continue
      watch="node1=${NODE_PIDS[0]},node2=${NODE_PIDS[1]},node3=${NODE_PIDS[2]},redis=$REDIS_PID,mongo=$MONGO_PID"
      spread=(--agent-hubs "127.0.0.1:${NODE_PORTS[0]}" --customer-hubs "127.0.0.1:${NODE_PORTS[1]},127.0.0.1:${NODE_PORTS[2]}" --watch-pids "$watch")
      HUB_PORT=${NODE_PORTS[0]} HUB_PID=${NODE_PIDS[0]}
      # Where redis-server's CPU goes per route: its own per-command counters over the routing run only.
      sample_redis_routing cluster-routing &
      sampler=$!
      loadgen cluster-routing any routing "${spread[@]}" --agents "$(q 125 25)" --burst "$(q 500 100)" --rounds 10 \
        --join-rate 12000 --burst-rounds 3 --waiting "$(q 10000 1000)"
      wait "$sampler" || true
      [ -s "$RUN/cluster-routing.redis-commandstats.txt" ] && redis_cpu_per_route cluster-routing >>"$notes"
      [ -s "$RUN/cluster-routing.redis-slowlog.txt" ] && python3 scripts/redis_script_costs.py cluster-routing "the paced rounds" "$RUN/cluster-routing.redis-slowlog.txt" >>"$notes"
      HUB_PORT=${NODE_PORTS[0]} HUB_PID=${NODE_PIDS[0]}
      cluster_relay=(relay --chats 100 --step-secs "$(q 5 2)" --rates "$(q 1000,5000,10000,20000,40000 1000,5000)")
      { await_in_log cluster-relay '-- step 5000' && sleep 1 && slowlog_sample cluster-relay; } &
      sampler=$!
      loadgen cluster-relay any "${cluster_relay[@]}" "${spread[@]}"
      wait "$sampler" || true
      [ -s "$RUN/cluster-relay.redis-slowlog.txt" ] && python3 scripts/redis_script_costs.py cluster-relay "the 5,000 msg/s step" "$RUN/cluster-relay.redis-slowlog.txt" >>"$notes"
      # The routing shape again with joins paced at the target rate (3,000/s) and no burst:
      # the latency a customer sees while the cluster keeps up, where the first run (joins
      # offered four times faster than routed) measures capacity, its latency mostly the wait
      # behind a round. Last, so the archive it writes does not load the relay's steps, and
      # once every node's archive has caught up with the relay's (up to a minute).
      await_archives "${NODE_PORTS[@]}"
      loadgen cluster-routing-target any routing "${spread[@]}" --agents "$(q 125 25)" --burst "$(q 500 100)" --rounds 10 \
        --join-rate 3000 --burst-rounds 0 --waiting "$(q 10000 1000)"
      stop_cluster
      # The single-node path with the same loadgen and shape, unpinned like the cluster.
      if start_hub cluster-relay-single any "${CLIENT_LIMITS[@]}"; then
        loadgen cluster-relay-single any "${cluster_relay[@]}"
        stop_hub cluster-relay-single
      fi
      ;;
    reports)
      # The manager's report (GET /api/reports, JSON) over 100,000 generated conversations,
      # end to end through a hub in the example's process: on the default embedded store and
      # on MongoDB (secantusdb). The first report on MongoDB builds its per-day cache (the
      # days are old: no node readied them); then the readying every node runs in the
      # background is timed over the same days, and the first report after it.
      cargo build --release --example reports_bench
      for store in embedded mongodb; do
        env_extra=()
        mongo_pid=
        if [ "$store" = mongodb ]; then
          start_mongo_wire reports || continue
          mongo_pid=$MONGO_WIRE_PID
          env_extra=(SWITCHBOARD_TEST_MONGODB_URI="mongodb://127.0.0.1:$MONGO_WIRE_PORT")
        fi
        if env "${env_extra[@]}" "$ROOT/target/release/examples/reports_bench" "$store" "$(q 100000 10000)" \
          >"$RUN/reports-$store.json" 2>"$RUN/reports-$store.log"; then
          python3 - "$RUN/reports-$store.json" >>"$notes" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"- reports ({r['store']}): {r['conversations']:,} conversations over 30 days (filled in {r['fill_s']} s); "
      f"GET /api/reports of the 30 days: first {r['report_30_days_first_ms']} ms, then median {r['report_30_days_median_ms']} ms; "
      f"of 7 days: median {r['report_7_days_median_ms']} ms; "
      f"the background readying of the last 35 days took {r['ready_ms']} ms, the first report after it {r['report_30_days_after_ready_ms']} ms.")
PY
        else
          failures+=("reports-$store: the example failed (see $RUN/reports-$store.log)")
        fi
        [ -n "$mongo_pid" ] && { kill "$mongo_pid" 2>/dev/null || true; wait "$mongo_pid" 2>/dev/null || true; }
      done
      ;;
    soak)
      # The hub's memory over an hour of steady light traffic: 20 chats, one per agent, 10 msg/s
      # each (both sides sending, 5 a second each: under the default rate limit, so the hub runs
      # with no setting raised), 100-byte messages. Neither process is pinned: a hub pinned to
      # one CPU runs tokio's current-thread runtime, and the point is the hub as people run it
      # (a worker per core, the blocking pool, the fold thread). The loadgen reads the hub's
      # VmRSS every 10 s; the report has the curve and the growth over the last 20 minutes.
      soak_secs=${BENCH_SOAK_SECS:-$(q 3600 120)}
      if start_hub soak any; then
        loadgen soak any soak --step-secs "$soak_secs" --rss-every-secs 10
        echo "- soak: $soak_secs s of traffic; every hub setting its default but MAX_CONNECTIONS_PER_ADDRESS (no client limit raised)." >>"$notes"
        stop_hub soak
      fi
      ;;
    *) echo "bench: unknown scenario $scenario" >&2; failures+=("unknown scenario $scenario") ;;
  esac
done

if [ -f bench/profile.md ]; then
  cat bench/profile.md >>"$notes"
fi
if [ ${#failures[@]} -gt 0 ]; then
  { echo; echo "**Failures in this run:**"; printf -- '- %s\n' "${failures[@]}"; } >>"$notes"
fi
"$LG_BIN" report --results "$RUN" --out-dir "$RESULTS" --notes "$notes" >/dev/null
echo "bench: report written to bench/results/latest.md (raw logs in $RUN)"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'bench: FAILED: %s\n' "${failures[@]}" >&2
  exit 1
fi
