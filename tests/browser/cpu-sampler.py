#!/usr/bin/env python3
"""The CPU time a command costs, its children's included: runs it, reads the CPU time of
every process below it four times a second, and prints the totals per process name when it
ends (keeping its exit status); Chromium's processes are told apart by their `--type=` (and
utility sub-type). `time CMD` misses Chromium's renderers: they are not reaped
into the command's usage. A process shorter than a quarter second may be missed.

    cd tests/browser && ./cpu-sampler.py npm test
"""
import os, subprocess, sys, time, collections
TICK = os.sysconf('SC_CLK_TCK')
proc = subprocess.Popen(sys.argv[1:])
seen = {}  # (pid, start time): (name, CPU seconds at the last look)
def sample():
    stats = {}
    for d in os.listdir('/proc'):
        if not d.isdigit(): continue
        try:
            s = open(f'/proc/{d}/stat').read()
        except OSError: continue
        comm = s[s.index('(')+1:s.rindex(')')]
        if comm.startswith('chrom'):  # Chromium's processes apart by role: --type=renderer, gpu-process, ...
            try:
                args = open(f'/proc/{d}/cmdline').read().replace('\0', ' ').split()  # zygote children retitle themselves: one space-separated string
            except OSError: args = []
            kind = next((a[7:] for a in args if a.startswith('--type=')), 'browser')
            sub = next((a[19:] for a in args if a.startswith("--utility-sub-type=")), '')
            comm = f'chromium:{kind}' + (f':{sub.rsplit(".", 1)[-1]}' if sub else '')
        f = s[s.rindex(')')+2:].split()
        stats[int(d)] = (int(f[1]), comm, (int(f[11]) + int(f[12])) / TICK, f[19])
    below = {proc.pid}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, *_ ) in stats.items():
            if ppid in below and pid not in below: below.add(pid); changed = True
    for pid in below:
        if pid in stats:
            _, comm, cpu, start = stats[pid]
            seen[(pid, start)] = (comm, cpu)
start = time.time()
while proc.poll() is None:
    sample(); time.sleep(0.25)
wall = time.time() - start
tot = collections.defaultdict(float)
for comm, cpu in seen.values(): tot[comm] += cpu
print(f'cpu-sampler: wall {wall:.0f} s, cpu {sum(tot.values()):.0f} s: ' + ', '.join(f'{k} {v:.0f}' for k, v in sorted(tot.items(), key=lambda x: -x[1])), file=sys.stderr)
sys.exit(proc.returncode)
