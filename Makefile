# Switchboard — the two commands that matter: `make run` and `make test`.

CARGO ?= cargo

## A failing test prints its message without the stack's frames: a CI log is cut to its
## head and tail, and thirty frames after the message pushed the message out of the tail
## (2026-11-29). `make test RUST_BACKTRACE=1` brings them back.
export RUST_BACKTRACE := 0

VENV  := .venv
BROWSER_DIR := tests/browser

.PHONY: run cluster test check-imports test-deps test-build test-rust test-rust-shared test-hub-shared test-rust-others test-alone test-browser bench fmt lint clean

## Start the hub with zero configuration (127.0.0.1:8080, embedded store under ./data),
## and a demo shop site with the chat widget on http://localhost:8090 (DEMO_HOST_PORT).
run:
	DEMO_HOST_PORT=$${DEMO_HOST_PORT-8090} $(CARGO) run --release --bin switchboard -- serve

## Three nodes on 127.0.0.1:8081-8083 with a local redis-server and MongoDB-wire server
## (state in ./cluster-data); Ctrl-C stops them. docs/operations.md "Several nodes (Redis)".
cluster:
	scripts/cluster.sh

## Every test: unit, property, websocket/HTTP integration (real MongoDB-wire server), browser.
## The build and the installing of the test dependencies (downloads, mostly) run side by side;
## then the Rust tests (the hub's beside the others', those niced), the cluster tests that
## must run alone, and the browser tests, one phase at a time (the Rust tests beside the
## browser tests starved the routing differential test's Redis calls on a 2-core machine;
## the cluster tests that must run alone beside the browser tests, on a loaded machine,
## starved the MongoDB-wire server and the scenarios' checkers found acknowledged messages
## missing from the archive: tried again on 2026-11-28, 7 of the 23 failed, 654 acknowledged
## messages missing in scenario 1, seq gaps in others; on 2026-11-29 with the browser tests
## at nice 19, load 11 to 18, 2 of the 9 scenarios failed, and Chromium raises some of its
## own processes' priority, so nice cannot keep it under them).
## Each phase's start and the end are printed with the time, so a log shows where the
## minutes went.
test: check-imports
	@echo "make test: $$(date -u +%T) the build and the test dependencies"
	$(MAKE) -j2 test-deps test-build
	@echo "make test: $$(date -u +%T) the Rust tests"
	$(MAKE) test-rust-shared
	@echo "make test: $$(date -u +%T) the cluster tests that run alone"
	$(MAKE) test-alone
	@echo "make test: $$(date -u +%T) the browser tests"
	$(MAKE) test-browser
	@echo "make test: $$(date -u +%T) done"

## The files of src/ import each other without circles: each circle is printed with the
## imports that make it, then one `check-imports:` line; fails when there is one.
check-imports:
	python3 scripts/import-circles.py src

## Installs what the tests need: a Python venv with secantusdb, npm packages, Debian chromium
## and chromium-headless-shell.
test-deps:
	scripts/ensure-test-deps.sh

## Every test binary, and the hub binary the browser tests start. Not the examples (the
## benchmarks' programs, `--all-targets` would add them): compiling them tests nothing and
## took about two CPU-minutes; `make lint` (clippy --all-targets) checks that they compile
## and `make bench` builds and runs them.
## Where the build goes (a cold build with `--timings`, 2026-11-30, load 7 to 16 from other
## builds, so shares, not times: 32 min, 788 CPU-seconds): the dependencies until 36 % of
## the run; then the library and its unit-test build (the library again, with cfg(test))
## side by side, one core each, until 92 % (together 49 % of the units' time); after the
## library, the integration tests one after the other on the freed core (allocator,
## contract, the hub binary, its empty unit-test build, then hub's tests: 15 % of the run,
## the last 6 % alone). It is CPU-bound on 2 cores: only less compiling shortens it.
## The library's unit-test build alone (`cargo test --lib --no-run` after a touch, the
## dependencies built; two runs side by side per setting, load 3 to 16): 145 and 139
## CPU-seconds as the dev profile is (line tables), 128 and 121 without debug info (.ci/run
## builds so: CARGO_PROFILE_DEV_DEBUG=0), 139 with 16 codegen units for the workspace.
## Linking is not where it goes (2026-11-30, load 11 to 22): it links eight executables
## (seven test binaries and the hub's), already with LLVM's lld (rustc's default linker on
## x86_64 Linux since Rust 1.90), not GNU ld. Each link run again on its own: the allocator
## test 1.0 to 1.2 CPU-seconds, the hub binary 2.0 to 2.3 (GNU ld 4.9 and 9.8, mold 1.10
## from Debian 1.6 and 2.7), so about 12 of the build's 800 for all eight (scaled by their
## sizes): no linker setting is kept.
## What the compiler generates for the library (`cargo llvm-lines --lib`, 2026-11-30: 4.8
## million lines of LLVM IR) has no one big instantiation to cut: the largest, bson's
## deserialize_hint, is 1.3 %. By family: serde, a quarter (our records' derived
## Deserialize 11 %, about 13 copies each, one per deserializer that reads them: bson's,
## serde_json, serde's buffer for flattened fields; serde's and bson's generic code 14 %),
## tokio's task machinery 8 % (281 spawned future types, ours and the dependencies'), axum's
## handler glue 4 %, redb 3.5 %, utoipa 3 %, mongodb 3 %, our own functions 17 %. Fewer
## copies would take a different way of reading the stores' records, not a local cut. Its
## unit-test build (`--profile test`) is 5.6 million lines: the tests add 17 %, of which
## proptest's runner, instantiated for each property test, 0.3 million (5 %).
test-build:
	$(CARGO) test --workspace --tests --no-run

## The full-size cluster scenarios and the stalled-node cases (three node processes, Redis and
## the MongoDB-wire server each, under faults) run after the rest: with other tests beside
## them a 2-core machine starves the nodes' lease renewals, which is a different fault from
## the one each of them injects. They mostly wait on their faults' timelines (115
## CPU-seconds in a 377 s run, 0.3 of a core), but those timelines need the CPU at once
## when they come. The scenarios (hundreds of clients) run one at a time; the stall tests
## (an agent and a customer or two each) two at a time, as the `ONE_SCENARIO_AT_A_TIME`
## lock of tests/hub/cluster_scenarios.rs lets them. On a quiet fresh clone (2026-11-29) the
## scenarios took 141 s, the stall tests 77 s, two of them 44 s each (their lagging node
## held every set-up step 6 s; now only the one event they need late: 9 and 10 s). On
## 2026-11-30, the 18 stall tests: 85 s before (load 8), 53 s and 44 s after (load 10, 6).
## Three at a time took 44 s and 36 s (load 14), but one of four runs failed (at load 25: a
## customer's connection to a node just started was reset, unexplained), as one of seven
## had on 2026-11-29 (a node exited at its start: test ports were drawn at random, so two
## tests could draw the same; each is now handed out once per process, tests/hub/mongod.rs).
## Per test (2026-11-30, load 4 to 10): the scenarios 166 s, scenario 4's two seeds 32 s each
## (their parade of faults), scenario 1 29 s, 2 15 and 19 s, 3 12 to 13 s; the stall tests
## 71 s, the longest two 14 s each (once the woken node registers again they read the
## conversation for 10 s, within which its archive writes come).
ALONE := cluster_scenarios:: cluster_stall::

test-rust: test-rust-shared test-alone

## The hub's integration tests wait on sockets and child processes much of the time: four
## at a time took 178 s for the hub's shared tests against 280 s two at a time (with other
## builds beside them), and still leave a core idle (test-hub-shared). Four once starved
## some tests past their waits, when every test hub's sign-ins paid the full argon2 cost;
## test hubs hash lightly now.
## Where the phase's time goes (2026-11-29, with other builds beside it, load about 10): the
## library's 436 unit tests take 114 s, 438 test-seconds, mostly property tests that are
## CPU-bound; cluster_routing 33 s, contract 23 s; the hub's 562 shared tests 377 s, about
## 1500 test-seconds, two fifths of them in the 50 tests over 6 s, which wait out store
## outages, held writes, leases, mail windows.
## On a quiet fresh clone (2026-11-29): the library's unit tests 17.5 s, cluster_routing 24 s,
## contract 13.5 s, the hub's shared tests 190 s.
## The test threads start tests in name order, so the phase ends on the webhooks_ tests (the
## longest, 16 s, waits out the 15 s WEBHOOK_LEASE_SECS, the setting's least). The phase is
## bound by its sum of test-seconds, not by that tail: the hub's 566 shared tests summed 1290
## test-seconds (load 10), 322 s at four threads against the 325 s the run took, and its last
## test ended 5 s after the lease-waiting one; a shorter lease in the tests would save about
## a quarter of the seconds it cuts, so the least stays 15 s.
test-rust-shared:
	$(MAKE) -j2 --output-sync=target test-hub-shared test-rust-others

## The hub's shared tests beside every other test binary (the library's unit and property
## tests, cluster_routing, contract, loadgen's), which run at a lower priority: one after
## the other, the others' 55 s (a quiet fresh clone, 2026-11-29) came before the hub's
## 190 s, while the hub's waiting tests leave a core idle. Side by side at the same priority
## the others' CPU-bound property tests starved the hub's early cluster tests (3 failed,
## buddy_cluster and cluster_conversations, load 11; one after the other 1 did); niced,
## they take the idle CPU only. Measured the same afternoon, load 8 to 13: 572 s one after
## the other, 319 s and 281 s side by side niced (the hub's 381 s, 313 s and 277 s; every
## test passed in both niced runs).
## Four threads leave the machine half idle: the hub's shared tests (their hubs, MongoDB-wire
## server, Redis and children counted, tests/browser/cpu-sampler.py) took 179 CPU-seconds in
## 343 s at four, 0.5 of a core (2026-11-30, load 9 to 11 from others' work; one test
## failed, buddy_cluster's heir waiting for its frame), 193 in 259 s at six (load 7 to 13,
## none failed), 212 in 319 s at eight (load 14 to 16; three failed: api_tokens' Redis count,
## attachments' two-node quota, a bots_cluster ack with Redis away). The whole phase (`make
## test-rust-shared`, with a release benchmark at nice -20 beside it, load 17 to 25): 926 s at
## four, 16 of the hub's tests failed; 373 s at six, 5 failed; cluster_routing failed in both.
## Then six took 314 s (4 failed: cluster tests waiting for a frame; load 6 to 16) and four
## 286 s (none failed; load 16 to 7). Under others' load the load decides more than the
## number, so four stays until six has passed on a quiet machine: `make test
## HUB_TEST_THREADS=6` tries it (a quiet machine has the idle core six would use).
HUB_TEST_THREADS ?= 4

test-hub-shared:
	scripts/with-mongo.sh $(CARGO) test --test hub -- --test-threads=$(HUB_TEST_THREADS) $(addprefix --skip ,$(ALONE))

## Every test target but `hub` (the glob names the integration tests not starting with h),
## niced below the hub's tests.
test-rust-others:
	nice -n 10 scripts/with-mongo.sh $(CARGO) test --workspace --lib --bins --test '[!h]*' -- --test-threads=4

test-alone:
	scripts/with-mongo.sh sh -c '$(CARGO) test --test hub -- --test-threads=1 cluster_scenarios:: \
	  && $(CARGO) test --test hub -- --test-threads=2 cluster_stall::'

## Two test files at once: the phase keeps a 2-core machine busy. The pages run in Debian's
## chromium-headless-shell, Chromium's old headless mode, without the full browser's window
## and compositing (tests/browser/helpers.mjs; two tests keep one page in the full chromium
## and say why). On 2026-11-29, beside other builds (load average 10 to 16), the 142 tests
## took 441 and 417 s and 398 and 395 CPU-seconds, Chromium's 289 and 290 (renderers 156 and
## 151, the browser process 87 and 89, GPU process 22, network 16; node 84 and 82, the hubs
## 21), against 710 and 686 s and 785 and 771 CPU-seconds in the full chromium, Chromium's
## 672 and 662 (its browser process 368 and 382: it served playwright's protocol and
## composited every page). Chromium's CPU is not reaped into the command's own usage, so
## `time make test-browser` misses it: measure with tests/browser/cpu-sampler.py, which
## counts every process below the command. Launch options tried with the full chromium
## (--no-zygote, site isolation off, --disable-software-rasterizer, --use-gl=disabled, more
## features off) moved nothing beyond the run-to-run noise, so none is kept. Three at once
## also missed 8 s timeouts under load. a11y.test.mjs, the longest file (three axe passes,
## each CPU-bound in the page), is first in the list and so starts first.
## On 2026-11-30 (load 9 to 11) the 183 tests took 673 s and 544 CPU-seconds; by file, in
## test-seconds: a11y 152 (CPU-bound), left-while-away 117 (each test waits out 12 s grace
## periods, which its order of events needs: the agent back within theirs once the
## customer's ran out), conversations 100, continuing 67, follow-up-mail 53 (its timers are
## 1 to 2 s already: the rest is work), conversation-desk 46, agent-reconnect 46; two failed
## (agent-reconnect and left-while-away: the console did not say "reconnecting" within 15 s
## of the proxy's cut).
## `make test-browser BROWSER_CONCURRENCY=N` tries another number. The pages' pictures for
## docs/screenshots are saved only with `SCREENSHOTS=1 make test-browser` (a failing test's
## always): each is a full-page paint and PNG encode in Chromium.
## Each test file launches one browser (two a second one, the full chromium; faq-bot none),
## and its tests each open new contexts (their own cookies and storage): 47 launches. A
## launch costs little: 20 launches with a page each took 7.5 and 7.7 CPU-seconds, 20
## contexts with a page in one browser 3.7 and 3.4 (2026-11-30, load 13): about 0.2 a
## launch, 10 of the phase's 400. One browser shared by every file would save that and tie
## each file to every other's crashes.
BROWSER_CONCURRENCY ?= 2

## The hub binary as `cargo test` builds it for the integration tests (tests/allocator.rs is
## the smallest of them): after test-rust nothing is rebuilt. `cargo build` would build it
## again, and half the dependencies with it: without the dev-dependencies' features
## (serde_json's preserve_order, redb's cache metrics, reqwest's cookies) they differ.
test-browser:
	$(CARGO) test --no-run --test allocator
	cd $(BROWSER_DIR) && BROWSER_CONCURRENCY=$(BROWSER_CONCURRENCY) npm test

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
