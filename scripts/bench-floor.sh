#!/usr/bin/env bash
# The message path's floor (bench/README.md, "Where the message path's floor is"): for each
# server (the hub's default, the hub on STORE=memory, the Node ws relay, the bare floor) at
# one rate, the peers shape (100 chats by default, 100-byte messages, both sides sending), the server on
# CPU 0 and the loadgen on CPU 1 at nice -20; prints CPU, latencies and, from `perf stat` over
# 5 s of the step, the server's syscalls per message and its CPU a message by thread (the
# relay's, the blocking pool's `tokio-rt-worker`, the fold's `archive-fold`; from schedstat). Needs perf, root (nice -20, tracepoints),
# the release build (`cargo build --release --workspace`) and bench/node_modules (`make bench`
# installs it). It runs in a session of its own whose scheduling group is at nice -20: the
# kernel groups processes by session (autogroup), so a nice value alone ranks the server only
# against its own session's processes, not against builds other sessions run beside it.
# BENCH_HUB_ENV="NAME=value ..." adds settings to the hub's environment (an A/B switch).
# BENCH_FLOOR_CHATS=500 runs the peers shape with that many chats (default 100).
# BENCH_FLOOR_SCHED=1 also records CPU 0's scheduler events (sched_switch, sched_wakeup) over
# the same 5 s into OUTDIR/SERVER.sched.data, for `perf sched timehist -i` or `perf script -i`.
# Usage: scripts/bench-floor.sh HUB_BIN RATE OUTDIR [default memory node bare]
set -u
if [ -z "${BENCH_FLOOR_SESSION:-}" ]; then
  BENCH_FLOOR_SESSION=1 exec setsid --wait "$0" "$@"
fi
echo -20 > /proc/self/autogroup 2>/dev/null || true
BIN=$1 RATE=$2 OUT=$3; shift 3
SERVERS=${*:-default memory node bare}
mkdir -p "$OUT"
PASS=bench-admin-pass
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LG=$ROOT/target/release/loadgen
for srv in $SERVERS; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  data=$(mktemp -d /tmp/switchboard-bench-data.XXXXXX)
  extra=(); lgx=()
  case $srv in
    default|memory)
      [ $srv = memory ] && extra=(STORE=memory)
      env -i PATH="$PATH" HOME="$HOME" BIND_ADDR="127.0.0.1:$port" ADMIN_USERNAME=admin ADMIN_PASSWORD=$PASS \
        RUST_LOG=warn DATA_DIR="$data" MAX_CONNECTIONS_PER_ADDRESS=1000000 \
        RATE_LIMIT_PER_SEC=100000 RATE_LIMIT_BURST=100000 OUTBOUND_BUFFER=65536 "${extra[@]}" ${BENCH_HUB_ENV:-} \
        nice -n -20 taskset -c 0 "$BIN" serve >"$OUT/$srv.hub.log" 2>&1 &
      pid=$!
      for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done ;;
    node)
      nice -n -20 taskset -c 0 node "$ROOT/bench/ws-relay.js" "127.0.0.1:$port" >"$OUT/$srv.hub.log" 2>&1 &
      pid=$!; lgx=(--bare true --acks false); sleep 1 ;;
    bare)
      nice -n -20 taskset -c 0 "$LG" bare-relay --bind "127.0.0.1:$port" >"$OUT/$srv.hub.log" 2>&1 &
      pid=$!; lgx=(--bare true); sleep 1 ;;
  esac
  LOADGEN_ADMIN_PASSWORD=$PASS nice -n -20 taskset -c 1 "$LG" run relay --chats "${BENCH_FLOOR_CHATS:-100}" --max-chats 1 --msg-size 100 \
    --step-secs 12 --rates "$RATE" --stop-p99-ms 100000 --hub "127.0.0.1:$port" --hub-pid "$pid" "${lgx[@]}" \
    --out "$OUT/$srv.json" >/dev/null 2>"$OUT/$srv.lg.log" &
  lg=$!
  # the step's steady part: wait for the loadgen to start sending, then count 5 s
  for _ in $(seq 1 1800); do grep -q -- "-- step" "$OUT/$srv.lg.log" 2>/dev/null && break; sleep 0.1; done
  sleep 1.5
  rec=
  if [ "${BENCH_FLOOR_SCHED:-0}" = 1 ]; then
    perf record -q -C 0 -e sched:sched_switch -e sched:sched_wakeup -e sched:sched_waking \
      -o "$OUT/$srv.sched.data" -- sleep 5 >/dev/null 2>&1 &
    rec=$!
  fi
  threads() { date +%s.%N; for t in /proc/"$pid"/task/*; do echo "$(cat "$t/comm" 2>/dev/null)|$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null)"; done; }
  threads >"$OUT/$srv.threads0"
  perf stat -x, -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_fdatasync,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,task-clock' -p "$pid" -- sleep 5 2>"$OUT/$srv.stat"
  threads >"$OUT/$srv.threads1"
  [ -n "$rec" ] && wait "$rec"
  wait $lg
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  rm -rf "$data"
  python3 - "$OUT/$srv.json" "$OUT/$srv.stat" "$srv" "$RATE" <<'PY'
import json,sys
d=json.load(open(sys.argv[1]));st=d['figures']['steps'][-1]
c={}
for l in open(sys.argv[2]):
    p=l.strip().split(',')
    if len(p)>3 and p[0] and p[0][0].isdigit(): c[p[2].split(':')[-1].replace('sys_enter_','')]=float(p[0])
rate=st['sent_per_sec']; secs=5.0
per=lambda k: c.get(k,0)/secs/rate
# CPU by thread over the same 5 s (schedstat's time on CPU, ns), grouped by thread name
cpu={}
span=0.0
for i,f in enumerate(('threads0','threads1')):
    lines=open(sys.argv[2][:-4]+f).read().splitlines()
    span+=float(lines[0]) if i else -float(lines[0])
    for l in lines[1:]:
        name,_,ns=l.rpartition('|')
        if ns.isdigit(): cpu[name]=cpu.get(name,0)+(int(ns) if i else -int(ns))
threads=' '.join(f"{k}={v/1e3/span/rate:.1f}" for k,v in sorted(cpu.items(),key=lambda kv:-kv[1]) if v/1e3/span/rate>=0.05)
print(f"{sys.argv[3]:8} rate {rate:7.0f} cpu {st['hub_cpu_percent']:5.1f}% us/msg {st.get('cpu_us_per_msg',0):5.1f} p50/p90/p99/max {st['p50_ms']}/{st['p90_ms']}/{st['p99_ms']}/{st['max_ms']} ack_p99 {st.get('ack_p99_ms','-')} | per msg: send {per('sendto')+per('writev')+per('write'):.2f} (sendto {per('sendto'):.2f} writev {per('writev'):.2f} write {per('write'):.2f}) recv {per('recvfrom')+per('read'):.2f} fdatasync {per('fdatasync'):.4f} epoll {per('epoll_wait'):.2f} futex {per('futex'):.2f} task-clock/msg {c.get('task-clock',0)*1000/secs/rate:.1f}us | by thread, us/msg: {threads}")
PY
done
