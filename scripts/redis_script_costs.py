#!/usr/bin/env python3
"""Where redis-server's time goes, per Lua script and command, from a SLOWLOG sample.

The cluster bench (scripts/bench.sh, scenario `cluster`) logs every command redis-server
runs for two seconds of the routing rounds and of the relay (`slowlog-log-slower-than 0`) and passes the
`redis-cli SLOWLOG GET` output here. Scripts appear in the log as EVALSHA with their hash:
this names them by hashing the sources the nodes send (src/cluster/lua/), the same way
`redis::Script` does (SHA-1 of the exact text). Prints one markdown note line.

usage: redis_script_costs.py SCENARIO "WHEN" SLOWLOG_FILE
"""
import collections
import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LUA = ROOT / "src/cluster/lua"


def script_names() -> dict:
    """SHA-1 of each script's text → a readable name."""
    names = {}
    routing = (LUA / "routing.lua").read_text()
    transitions = re.findall(r'=> "([a-z_]+)",', (ROOT / "src/cluster/routing_scripts.rs").read_text())
    for name in set(transitions):
        text = f"{routing}\nreturn run('{name}')\n"
        names[hashlib.sha1(text.encode()).hexdigest()] = f"routing `{name}`"
    for path in LUA.glob("*.lua"):
        names[hashlib.sha1(path.read_text().encode()).hexdigest()] = f"`{path.stem}.lua`"
    return names


def entries(lines):
    """(command name, first argument, µs) for each SLOWLOG entry in redis-cli's plain
    output (id, unix time, duration µs, the arguments one per line, then the client's
    address and name), leaving out commands a script ran (their client is `?:0`): a
    script's own duration already holds them."""
    i = 0
    while i + 4 < len(lines):
        ident, when, micros, command = lines[i : i + 4]
        if ident.isdigit() and when.isdigit() and int(when) > 10**9 and micros.isdigit() and re.fullmatch(r"[A-Za-z|]+", command):
            end = i + 4
            while end < len(lines) and not re.fullmatch(r"(\d+\.\d+\.\d+\.\d+|\?):\d+", lines[end]):
                end += 1
            if end < len(lines) and lines[end] != "?:0":
                yield command.lower(), lines[i + 4], int(micros)
            i = end + 1
        else:
            i += 1


def main() -> None:
    scenario, when, path = sys.argv[1:4]
    lines = [line.rstrip("\n") for line in open(path, errors="replace")]
    names = script_names()
    totals = collections.defaultdict(lambda: [0, 0])
    for command, first_arg, micros in entries(lines):
        key = names.get(first_arg, "another script") if command == "evalsha" else f"`{command}`"
        totals[key][0] += 1
        totals[key][1] += micros
    everything = sum(us for _, us in totals.values())
    if not everything:
        return
    top = sorted(totals.items(), key=lambda kv: -kv[1][1])[:8]
    parts = ", ".join(f"{k} {100 * us / everything:.0f} % ({n} calls, {us / n:.0f} µs each)" for k, (n, us) in top)
    print(f"- {scenario}: redis-server's time by script and command over a {sum(n for n, _ in totals.values())}-command sample of {when} (SLOWLOG at threshold 0; a script's time includes the commands it runs): {parts}.")


if __name__ == "__main__":
    main()
