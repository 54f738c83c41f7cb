#!/usr/bin/env bash
# Runs a command with a real MongoDB-wire server (secantusdb, in memory) on a free
# loopback port, exported as SWITCHBOARD_TEST_MONGODB_URI; stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
server=.venv/bin/secantusd-py
if [ ! -x "$server" ]; then
  echo "with-mongo: $server is missing; run scripts/ensure-test-deps.sh (make test does)" >&2
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
"$server" --port "$port" --storage-path :memory: >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  if ! kill -0 $pid 2>/dev/null; then echo "with-mongo: secantusd-py died:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
export SWITCHBOARD_TEST_MONGODB_URI="mongodb://127.0.0.1:$port"
# The server binary itself, for tests that stop and restart MongoDB mid-chat.
export SWITCHBOARD_TEST_MONGOD="$PWD/$server"
echo "with-mongo: MongoDB-wire server on port $port"
"$@"
