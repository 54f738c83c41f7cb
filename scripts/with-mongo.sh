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
log=$(mktemp)
# Port 0: the kernel picks a free port, and the server's own "listening on" line names
# it, so the port is this server's and no other process's.
"$server" --port 0 --storage-path :memory: >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
  if [ -n "$port" ]; then break; fi
  if ! kill -0 $pid 2>/dev/null; then echo "with-mongo: secantusd-py died:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "$port" ]; then echo "with-mongo: secantusd-py did not say it listens within 30 s:" >&2; cat "$log" >&2; exit 1; fi
# Without retryable writes: secantusdb keeps a record of each one for 30 minutes (up to
# 10,000) and scans them all, in Python under its global lock, at every write, so a test
# with a few thousand writes (the 300-customer cluster scenario) slowed it until writes
# timed out for minutes after the traffic ended (2026-12-02). MongoDB itself keeps them
# in an index; the hub's own retries are idempotent by natural ids and do not rely on them.
export SWITCHBOARD_TEST_MONGODB_URI="mongodb://127.0.0.1:$port/?retryWrites=false"
# The server binary itself, for tests that stop and restart MongoDB mid-chat.
export SWITCHBOARD_TEST_MONGOD="$PWD/$server"
echo "with-mongo: MongoDB-wire server on port $port"
# A failure shows the server's own last words too (a slow or wedged server is one cause of
# archive writes timing out); the log goes with the server at exit.
status=0
"$@" || status=$?
if [ "$status" != 0 ]; then
  echo "with-mongo: the command failed (exit $status); the MongoDB-wire server's last log lines:" >&2
  tail -n 60 "$log" >&2
fi
exit "$status"
