#!/usr/bin/env bash
# `make cluster`: a local Switchboard cluster to try — one redis-server, one MongoDB-wire
# server (secantusdb) and three nodes on 127.0.0.1:8081-8083 sharing them, each with its
# own log under cluster-data/. Runs in the foreground; Ctrl-C (or SIGTERM) stops
# everything. State (accounts, archive) persists in cluster-data/ between runs;
# `rm -rf cluster-data` starts afresh. docs/operations.md "Behind a load balancer" says how to put a load
# balancer in front.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "cluster: need root to run: $*" >&2; exit 1; fi
}

# What it needs: Debian's redis-server, and secantusdb in .venv (the MongoDB-wire server
# the tests use; point MONGODB_URI at a real MongoDB instead by exporting it).
if ! command -v redis-server >/dev/null; then
  echo "cluster: installing redis-server from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if [ -z "${MONGODB_URI:-}" ] && [ ! -x .venv/bin/secantusd-py ]; then
  echo "cluster: creating .venv with secantusdb"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check secantusdb
fi

# SWITCHBOARD_BIN names an already built binary (e.g. a debug build); else a release build.
bin=${SWITCHBOARD_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --bin switchboard
  bin=target/release/switchboard
fi

data=cluster-data
mkdir -p "$data/redis" "$data/mongo"
REDIS_PORT=${CLUSTER_REDIS_PORT:-6390}
MONGO_PORT=${CLUSTER_MONGO_PORT:-27018}

# One secret for room tokens and one first-admin password, shared by every node and kept
# between runs (a node checks a room token another node signed).
[ -s "$data/room-token-secret" ] || head -c 32 /dev/urandom | base64 | tr -d '\n=' >"$data/room-token-secret"
[ -s "$data/admin-password" ] || head -c 12 /dev/urandom | base64 | tr -d '\n=/+' >"$data/admin-password"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "cluster: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

wait_port() { # port, name, pid
  for _ in $(seq 1 150); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then return 0; fi
    if ! kill -0 "$3" 2>/dev/null; then echo "cluster: $2 died; see its log in $data/" >&2; exit 1; fi
    sleep 0.2
  done
  echo "cluster: $2 did not listen on port $1" >&2; exit 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/$data/redis" --appendonly yes \
  >"$data/redis.log" 2>&1 &
pids+=($!); wait_port "$REDIS_PORT" redis-server $!

if [ -z "${MONGODB_URI:-}" ]; then
  .venv/bin/secantusd-py --port "$MONGO_PORT" --storage-path "$PWD/$data/mongo" >"$data/mongo.log" 2>&1 &
  pids+=($!); wait_port "$MONGO_PORT" secantusdb $!
  MONGODB_URI="mongodb://127.0.0.1:$MONGO_PORT"
fi

start_node() { # n
  local n=$1 port=$((8080 + $1))
  mkdir -p "$data/node$n"
  env STORE=mongodb MONGODB_URI="$MONGODB_URI" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    NODE_ID="node$n" BIND_ADDR="127.0.0.1:$port" DATA_DIR="$data/node$n" \
    ROOM_TOKEN_SECRET="$(cat "$data/room-token-secret")" ADMIN_PASSWORD="$(cat "$data/admin-password")" \
    "$bin" serve >"$data/node$n.log" 2>&1 &
  pids+=($!); wait_port "$port" "node$n" $!
}
# The first node alone first: it creates the first admin and the default categories in
# the shared store; the others find them there.
start_node 1
start_node 2
start_node 3

cat <<MSG
cluster: up — redis-server on $REDIS_PORT, MongoDB at $MONGODB_URI,
  nodes on http://127.0.0.1:8081, :8082 and :8083 (logs in $data/node*.log).
  Sign in as "admin" with password "$(cat "$data/admin-password")" (in $data/admin-password).
  Open /agent.html on one node and / (the customer page) on another: they are one desk.
  Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "cluster: a process stopped by itself; see $data/*.log" >&2
exit 1
