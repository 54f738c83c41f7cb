#!/usr/bin/env python3
"""The CPU time a command costs, its children's included: runs it, reads the CPU time of
every process below it four times a second, and prints the totals per process name when it
ends (keeping its exit status); Chromium's processes are told apart by their `--type=` (and
utility sub-type). `time CMD` misses Chromium's renderers: they are not reaped
into the command's usage. A process shorter than a quarter second may be missed.

    cd tests/browser && ./cpu-sampler.py npm test

With CPU_BY_FILE=1 it also prints each test file's CPU (every process below the one whose
command line names a *.test.mjs, as `node --test` runs each file in a process of its own).
"""
import os, subprocess, sys, time, collections
TICK = os.sysconf('SC_CLK_TCK')
proc = subprocess.Popen(sys.argv[1:])
seen = {}  # (pid, start time): (name, CPU seconds at the last look, test file)
BY_FILE = os.environ.get('CPU_BY_FILE') == '1'
roles = {}  # (pid, start time): a Chromium process's role
files = {}  # (pid, start time): the *.test.mjs its command line names, '' for none
def sample():
    stats = {}
    for d in os.listdir('/proc'):
        if not d.isdigit(): continue
        try:
            s = open(f'/proc/{d}/stat').read()
        except OSError: continue
        comm = s[s.index('(')+1:s.rindex(')')]
        f = s[s.rindex(')')+2:].split()
        if comm.startswith('chrom'):  # Chromium's processes apart by role: --type=renderer, gpu-process, ...
            try:
                args = open(f'/proc/{d}/cmdline').read().replace('\0', ' ').split()  # zygote children retitle themselves: one space-separated string
            except OSError: args = []
            # An exited process (a zombie until reaped) has no command line: it keeps the role
            # it was last seen with (read as "browser" it moved most renderers' CPU there).
            if args or (int(d), f[19]) not in roles:
                kind = next((a[7:] for a in args if a.startswith('--type=')), 'browser')
                sub = next((a[19:] for a in args if a.startswith("--utility-sub-type=")), '')
                roles[(int(d), f[19])] = f'chromium:{kind}' + (f':{sub.rsplit(".", 1)[-1]}' if sub else '')
            comm = roles[(int(d), f[19])]
        stats[int(d)] = (int(f[1]), comm, (int(f[11]) + int(f[12])) / TICK, f[19])
        if BY_FILE and (int(d), f[19]) not in files:
            try:
                args = open(f'/proc/{d}/cmdline').read().split('\0')
            except OSError: args = []
            named = [os.path.basename(a) for a in args if a.endswith('.test.mjs')]
            files[(int(d), f[19])] = named[0] if len(named) == 1 else ''  # not the runner naming them all
    below = {proc.pid}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, *_ ) in stats.items():
            if ppid in below and pid not in below: below.add(pid); changed = True
    def file_of(pid):
        while pid in stats:
            name = files.get((pid, stats[pid][3]), '')
            if name: return name
            pid = stats[pid][0]
        return ''
    for pid in below:
        if pid in stats:
            _, comm, cpu, start = stats[pid]
            # The file once found stays (an orphan's parent is no longer its file's process).
            known = seen.get((pid, start), ('', 0, ''))[2]
            seen[(pid, start)] = (comm, cpu, known or (file_of(pid) if BY_FILE else ''))
start = time.time()
while proc.poll() is None:
    sample(); time.sleep(0.25)
wall = time.time() - start
tot = collections.defaultdict(float)
by_file = collections.defaultdict(lambda: collections.defaultdict(float))
for comm, cpu, name in seen.values():
    tot[comm] += cpu
    by_file[name or '(no file)'][comm] += cpu
print(f'cpu-sampler: wall {wall:.0f} s, cpu {sum(tot.values()):.0f} s: ' + ', '.join(f'{k} {v:.0f}' for k, v in sorted(tot.items(), key=lambda x: -x[1])), file=sys.stderr)
if BY_FILE:
    for name, t in sorted(by_file.items(), key=lambda x: -sum(x[1].values())):
        print(f'cpu-sampler: {name} {sum(t.values()):.1f} s: ' + ', '.join(f'{k} {v:.1f}' for k, v in sorted(t.items(), key=lambda x: -x[1]) if v >= 0.05), file=sys.stderr)
sys.exit(proc.returncode)
