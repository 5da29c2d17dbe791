# Developer entry points. CI runs `make test` through .ci/run on a fresh
# clone, as root, so `test` must install whatever the tests need.

GO ?= go

.PHONY: deps build run test test-faults test-cluster bench bench-go bench-tally bench-memory fmt vet clean

# deps installs ClickHouse (Debian 12: 18.16) unless a server binary is
# already there, ZooKeeper (Debian's zookeeper 3.8, which brings Java)
# unless its jar is there, Chromium, which the usage console's browser
# tests drive headless, and curl, which the test of the README's
# examples runs. Tests and `tally all` start their own private servers from
# them (the cluster tests a ZooKeeper and a 2x2 ClickHouse cluster), so
# nothing is configured or started here. /usr/sbin is checked by path
# because it is not on an ordinary user's PATH.
deps:
	@pkgs=; \
	if ! command -v clickhouse-server >/dev/null 2>&1 && ! command -v clickhouse >/dev/null 2>&1 \
		&& [ ! -x /usr/sbin/clickhouse-server ]; then \
		pkgs="clickhouse-server clickhouse-client"; \
	fi; \
	if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then \
		pkgs="$$pkgs zookeeper"; \
	fi; \
	if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then \
		pkgs="$$pkgs chromium"; \
	fi; \
	command -v curl >/dev/null 2>&1 || pkgs="$$pkgs curl"; \
	[ -n "$$pkgs" ] || exit 0; \
	sudo=; \
	if [ "$$(id -u)" -ne 0 ]; then \
		if command -v sudo >/dev/null 2>&1; then sudo=sudo; \
		else echo "deps: $$pkgs missing and installing needs root (no sudo found)" >&2; exit 1; fi; \
	fi; \
	set -x; \
	$$sudo apt-get update && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $$pkgs

build:
	$(GO) build -o bin/tally ./cmd/tally

# run starts ingest, aggregator, query, the embedded broker and a private
# ClickHouse (data in ./data) in one process. The binary is built first and
# exec'd (not `go run`), so Ctrl-C reaches tally alone and its exit status
# is the target's.
run: deps build
	exec ./bin/tally all

# The timeout stays under CI's limit so a hung test fails with a stack dump.
# Screenshots of the usage console's pages land in ./artifacts.
test: deps vet
	TALLY_TEST_ARTIFACTS=$(CURDIR)/artifacts $(GO) test -count=1 -timeout 14m ./...

# test-faults runs the whole fault suite (faults/): every fault with larger
# loads, against the built binary, a private ClickHouse and an in-process
# broker. It prints a table of acknowledged and counted events and fails on
# any difference; `make test` runs its short version.
test-faults: deps
	TALLY_FAULTS=full $(GO) test -count=1 -timeout 20m -v -run '^TestFault' ./faults/

# test-cluster runs the cluster test (faults/): ZooKeeper, 2 shards x 2
# replicas of ClickHouse, a three-broker in-process Kafka and several of
# each component, with one replica and one aggregator killed under load and
# restarted. It prints the fault suite's table and fails on any difference.
test-cluster: deps
	TALLY_CLUSTER=full $(GO) test -count=1 -timeout 25m -v -run '^TestCluster' ./faults/

# bench measures Tally against its limits in one run, in under 10 minutes
# (BENCHMARKS.md): bench-go runs the Go benchmarks of the hot paths (only the
# packages that have some, so nothing else is compiled); bench-tally starts
# its own broker, ingest, `tally all` and ClickHouse and prints a table and,
# as its last line, a JSON report. BENCH_FLAGS adds flags, e.g.
# BENCH_FLAGS="-bench.duration=10s -bench.query=false".
bench: bench-go bench-tally

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $$(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u)

bench-tally: deps build
	./bin/tally bench -log.level=warn $(BENCH_FLAGS)

# bench-memory is not part of bench: `tally all` under a steady load for 10
# minutes (RSS every 10 s: start, peak, end, slope), then under more load
# than its aggregator takes for a minute (backlog and peak RSS).
bench-memory: deps build
	./bin/tally bench -log.level=warn -bench.ingest=false -bench.clickhouse=false -bench.e2e=false -bench.query=false \
		-bench.memory-duration=10m -bench.lag-duration=60s $(BENCH_FLAGS)

fmt:
	$(GO) fmt ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf bin data artifacts

# loadgen drives a running `make run` (in another terminal) with synthetic
# events and checks their usage is exact; LOADGEN_FLAGS adds flags, e.g.
# make loadgen LOADGEN_FLAGS="-loadgen.events=100000 -loadgen.gzip".
.PHONY: loadgen
loadgen:
	$(GO) run ./cmd/tally loadgen $(LOADGEN_FLAGS)
