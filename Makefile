# Switchboard — the two commands that matter: `make run` and `make test`.

CARGO ?= cargo

## A failing test prints its message without the stack's frames: a CI log is cut to its
## head and tail, and thirty frames after the message pushed the message out of the tail
## (2026-11-29). `make test RUST_BACKTRACE=1` brings them back.
export RUST_BACKTRACE := 0

VENV  := .venv
BROWSER_DIR := tests/browser

.PHONY: run cluster test check-imports test-deps test-build test-rust test-rust-shared test-hub-shared test-rust-others test-rust-units test-rust-integration test-alone test-browser bench fmt lint clean

## Start the hub with zero configuration (127.0.0.1:8080, embedded store under ./data),
## and a demo shop site with the chat widget on http://localhost:8090 (DEMO_HOST_PORT).
run:
	DEMO_HOST_PORT=$${DEMO_HOST_PORT-8090} $(CARGO) run --release --bin switchboard -- serve

## Three nodes on 127.0.0.1:8081-8083 with a local redis-server and MongoDB-wire server
## (state in ./cluster-data); Ctrl-C stops them. docs/operations.md "Several nodes (Redis)".
cluster:
	scripts/cluster.sh

## Every test: unit, property, websocket/HTTP integration (real MongoDB-wire server), browser.
## The build and the test dependencies' install (downloads, mostly) run side by side. Then the
## hub's shared tests, and beside them the other Rust tests (niced), then the cluster tests
## that must run alone. The browser tests start once the library's unit tests end (the
## CPU-bound part of the other Rust tests: its property tests keep both cores busy for half a
## minute, and pages starved that long miss their waits), and run beside the rest under
## SCHED_IDLE (`chrt --idle 0`): they take only the CPU the Rust tests leave idle, and those
## leave much of a 2-core machine idle (2026-11-30: the hub's shared tests used half a core,
## the alone phase a third, cluster_routing four fifths of a core or more for half a minute to
## a minute, contract half a core for half a minute) while the browser tests want 520 to 710
## CPU-seconds (more at higher loads). Until 2026-11-30 they waited for cluster_routing and
## contract too (1:50 after the build instead of 0:30). At normal priority, or at nice 19, the
## browser tests beside the Rust tests starved their Redis and MongoDB-wire servers and the
## cluster nodes' lease renewals (2026-11-28 and 29: acknowledged messages missing from the
## archive): nice is a weight, and Chromium raises some of its threads' priority again and, as
## root, puts its audio threads in SCHED_RR. SCHED_IDLE is a policy every child inherits
## (Chromium, node, the hubs the browser tests start); as root, CAP_SYS_NICE is dropped from
## their bounding set (`setpriv`), so none of them can leave it. make test fails if any phase
## failed, and names it; the output of the phases beside the hub's tests is kept in target/ and
## printed once all are done. Each phase's start and end are printed with the time.
test: check-imports
	@echo "make test: $$(date -u +%T) the build and the test dependencies"
	$(MAKE) -j2 test-deps test-build
	@rm -f $(OTHERS_LOG) $(BROWSER_LOG) $(OTHERS_LOG).done; failed=; \
	echo "make test: $$(date -u +%T) the hub's shared tests; beside them the other Rust tests, niced (output in $(OTHERS_LOG)), and once the library's unit tests end the browser tests at SCHED_IDLE (output in $(BROWSER_LOG))"; \
	( o=0; b=0; $(MAKE) test-rust-units >$(OTHERS_LOG) 2>&1 || o=1; \
	  echo "make test: $$(date -u +%T) the library's unit tests ended (exit $$o); the browser tests start"; \
	  ( BROWSER_WAIT_SCALE=3 $(BROWSER_IDLE) sh -c '$(BROWSER_RUN)' >$(BROWSER_LOG) 2>&1 ) & browser=$$!; \
	  $(MAKE) test-rust-integration >>$(OTHERS_LOG) 2>&1 || o=1; touch $(OTHERS_LOG).done; \
	  echo "make test: $$(date -u +%T) the other Rust tests ended (exit $$o)"; \
	  wait $$browser || b=2; \
	  echo "make test: $$(date -u +%T) the browser tests ended (exit $$b)"; exit $$((o + b)) ) & beside=$$!; \
	$(MAKE) test-hub-shared || failed="$$failed test-hub-shared"; \
	while [ ! -e $(OTHERS_LOG).done ]; do sleep 1; done; \
	echo "make test: $$(date -u +%T) the cluster tests that run alone"; \
	$(MAKE) test-alone || failed="$$failed test-alone"; \
	echo "make test: $$(date -u +%T) the Rust tests ended; the browser tests' end awaited"; \
	wait $$beside; s=$$?; \
	[ $$((s & 1)) = 0 ] || failed="$$failed test-rust-others"; \
	[ $$((s & 2)) = 0 ] || failed="$$failed test-browser"; \
	echo "make test: the other Rust tests' output ($(OTHERS_LOG)):"; cat $(OTHERS_LOG); \
	echo "make test: the browser tests' output ($(BROWSER_LOG)):"; cat $(BROWSER_LOG); \
	echo "make test: $$(date -u +%T) done"; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed"; exit 1; fi

## The files of src/ import each other without circles: each circle is printed with the
## imports that make it, then one `check-imports:` line; fails when there is one.
check-imports:
	python3 scripts/import-circles.py src

## Installs what the tests need: a Python venv with secantusdb, npm packages, Debian chromium
## and chromium-headless-shell.
test-deps:
	scripts/ensure-test-deps.sh

## Every test binary, and the hub binary the browser tests start. Not the examples (the
## benchmarks' programs): compiling them tests nothing and took about two CPU-minutes; `make
## lint` checks that they compile and `make bench` builds and runs them.
## The build is CPU-bound on 2 cores (cold, 2026-11-30: 788 CPU-seconds): the dependencies
## a third of it, then the library and its unit-test build side by side, then the integration
## tests one after the other. Without debug info the library's unit-test build takes 12 %
## fewer CPU-seconds (.ci/run builds so). Looked at and left (2026-11-30): the linker (lld
## already; the eight links cost about 12 of the 800 CPU-seconds), 16 codegen units (no
## gain), and the generic code (`cargo llvm-lines`: no instantiation above 1.3 % of the
## library's IR; serde's derived and generic code a quarter, one copy per deserializer that
## reads our records, which only another way of reading the stores' records would cut).
test-build:
	$(CARGO) test --workspace --tests --no-run

## The full-size cluster scenarios and the stalled-node cases (three node processes, Redis and
## the MongoDB-wire server each, under faults) run after the hub's shared tests: other tests
## beside them at the same priority starve the nodes' lease renewals on a 2-core machine,
## which is a different fault from the one each of them injects. The scenarios (hundreds of
## clients) run one at a time; the stall tests two at a time, as the `ONE_SCENARIO_AT_A_TIME`
## lock of tests/hub/cluster_scenarios.rs lets them (three at a time failed one run in four,
## at load 25). They mostly wait on their faults' timelines (115 CPU-seconds in 377 s,
## 2026-11-30), but those timelines need the CPU at once when they come. Per test (2026-11-30,
## load 4 to 10): the scenarios 166 s (scenario 4's two seeds 32 s each, scenario 1 29 s), the
## stall tests 71 s; on a quiet fresh clone (2026-11-29) the scenarios took 141 s.
ALONE := cluster_scenarios:: cluster_stall::

test-rust: test-rust-shared test-alone

## The hub's integration tests wait on sockets and child processes much of the time: four at
## a time took 178 s against 280 s two at a time. The phase is bound by the sum of its
## test-seconds (the hub's 566 shared tests, 1290 test-seconds at load 10), not by its last
## test (webhooks_, 16 s: the least WEBHOOK_LEASE_SECS, 15 s, waited out). On a quiet fresh
## clone (2026-11-29): the library's unit tests 17.5 s, cluster_routing 24 s, contract
## 13.5 s, the hub's shared tests 190 s.
test-rust-shared:
	$(MAKE) -j2 --output-sync=target test-hub-shared test-rust-others

## The hub's shared tests beside every other test binary (the library's unit and property
## tests, cluster_routing, contract, loadgen's), which run niced: at the same priority the
## others' CPU-bound property tests starved the hub's early cluster tests; niced, they take
## the idle CPU only (2026-11-29, load 8 to 13: 572 s one after the other, 319 s and 281 s
## side by side). Four threads left half a core idle (179 CPU-seconds in 343 s, 2026-11-30);
## six passed once (load 7 to 13) and failed 4 tests once (load 6 to 16), so four stays until
## six passes on a quiet machine: `make test HUB_TEST_THREADS=6` tries it.
HUB_TEST_THREADS ?= 4

test-hub-shared:
	scripts/with-mongo.sh $(CARGO) test --test hub -- --test-threads=$(HUB_TEST_THREADS) $(addprefix --skip ,$(ALONE))

## Every test target but `hub` (the glob names the integration tests not starting with h),
## niced below the hub's tests, in two parts: the unit tests (the library's, the binaries'),
## CPU-bound (the library's 21 CPU-seconds in 27 s, 2026-11-30, load 10), then the other
## integration tests, which leave much of a core idle (2026-11-30, load 5 to 14, two runs:
## cluster_routing 52 CPU-seconds in 65 s and 39 in 28 s, its Redis servers' included; contract
## 14 in 28 s and 37 s, its MongoDB-wire server's apart). `make test` starts the browser tests
## between the two; beside them (SCHED_IDLE) all 184 browser tests and both binaries passed.
test-rust-others:
	$(MAKE) test-rust-units
	$(MAKE) test-rust-integration

test-rust-units:
	nice -n 10 $(CARGO) test --workspace --lib --bins -- --test-threads=4

test-rust-integration:
	nice -n 10 scripts/with-mongo.sh $(CARGO) test --workspace --test '[!h]*' -- --test-threads=4

test-alone:
	scripts/with-mongo.sh sh -c '$(CARGO) test --test hub -- --test-threads=1 cluster_scenarios:: \
	  && $(CARGO) test --test hub -- --test-threads=2 cluster_stall::'

## Three test files at once (BROWSER_CONCURRENCY): the phase waits more than it computes. Two
## at a time, its 184 tests took 456 s and 519 CPU-seconds (2026-11-30, load 2 to 7: a core and
## a seventh; their test-seconds add up to 830), and beside the Rust tests, with 1.5 to 1.7
## cores idle, it ran on 2:39 after them in a quiet fresh clone's run (15:10 in all). Three at
## a time all 184 passed at load 15 to 18 (623 s, 589 CPU-seconds), and in `make test` beside
## the Rust tests, under SCHED_IDLE, at load 13 to 24 (827 s) and 10 to 20 (558 s; every phase
## green, 14:12 after an up-to-date build). Loads here are other sessions': each session is its
## own scheduler autogroup, which nice and SCHED_IDLE rank only within. The pages run in
## Debian's chromium-headless-shell, Chromium's old headless mode, at half the CPU of the full
## chromium (tests/browser/helpers.mjs, and two tests keep the full one and say why).
## Chromium's CPU is not reaped into the command's usage: tests/browser/cpu-sampler.py counts
## every process below a command (CPU_BY_FILE=1: by test file too). Until 2026-11-30 it counted
## an exited renderer as the browser process; counted right (load 15 to 30, 11 tests timing
## out, 624 CPU-seconds): the renderers 287, node 118 (0.7 a file only to load
## playwright-core), the browser process 92, the GPU process 44, the hubs 31, the network
## service 27. About half the renderers' main-thread time is Playwright's protocol calls (a
## trace of conversation-desk): its injected script set up in each new document, and queries
## that force style and layout thousands of times (one call 9,000 times, 0.35 CPU-seconds).
## The pages cost little left alone: a signed-in console 0.02
## CPU-seconds a second, a spinner or a waitForFunction polling every frame 0.06; reduced
## motion in every context saved 2 of 34 CPU-seconds (noise), and was left. By file, in
## test-seconds: a11y 98 (three axe passes,
## CPU-bound; first in the list, so it starts first), continuing 82, left-while-away 74 (12 s
## grace periods, which its order of events needs), conversations 60. Launch options (no
## zygote, site isolation off, GL off, a renderer process limit) moved nothing; a launch costs
## about 0.2 CPU-seconds, so each file keeps its own browser (one shared one would tie each
## file to every other's crashes). The pages' pictures for docs/screenshots are saved only with
## `SCREENSHOTS=1 make test-browser` (a failing test's always).
BROWSER_CONCURRENCY ?= 3

## The hub binary as `cargo test` builds it for the integration tests (tests/allocator.rs is
## the smallest of them): after test-build nothing is rebuilt. `cargo build` would build it
## again, and half the dependencies with it: without the dev-dependencies' features
## (serde_json's preserve_order, redb's cache metrics, reqwest's cookies) they differ.
test-browser:
	$(CARGO) test --no-run --test allocator
	$(BROWSER_RUN)

## `make test` runs BROWSER_RUN itself, beside the Rust tests (test-build built the hub
## binary), under BROWSER_IDLE: SCHED_IDLE, and as root without CAP_SYS_NICE (see `test`).
## There the pages get no CPU while the Rust tests keep both cores busy, so every wait's
## budget is three times its own (BROWSER_WAIT_SCALE=3, tests/browser/helpers.mjs `waitMs`):
## CI failed on a 15 s `page.goto` of agent.html there (2026-12-01), the same page a second
## or two on a quiet machine.
BROWSER_RUN = cd $(BROWSER_DIR) && BROWSER_CONCURRENCY=$(BROWSER_CONCURRENCY) npm test
BROWSER_LOG := target/test-browser.log
OTHERS_LOG := target/test-rust-others.log
BROWSER_IDLE := $(shell setpriv --bounding-set -sys_nice true 2>/dev/null && echo setpriv --bounding-set -sys_nice) chrt --idle 0

## Release-build benchmarks of the default configuration (embedded store), beside the memory
## store, a Node ws relay and the bare floor; the report lands in bench/results/ (bench/README.md).
bench:
	scripts/bench.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf $(VENV) $(BROWSER_DIR)/node_modules
