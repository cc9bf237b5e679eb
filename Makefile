# keygate: `make run` starts the daemon, `make test` runs the tests.
GO      ?= go
BIN     := bin/keygate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run lint test test-race bench bench-micro bench-load bench-store bench-fleet fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keygate

# ARGS passes extra flags, e.g. make run ARGS='--trusted-proxies 10.0.0.0/8'.
ARGS    ?=

run: build
	./$(BIN) serve $(ARGS)

# staticcheck at a pinned version, fetched through the Go module proxy on
# first use (then from the module cache); its default checks, all of them.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet ./...
	$(STATICCHECK) ./...
	cd bench && $(GO) vet ./... && $(STATICCHECK) ./...

test: lint
	$(GO) test -count=1 ./...
	$(GO) test -race -count=1 -run 'Race|Concurrent' ./...

# make soak: minutes of steady load on the real binary with a 60 s
# usage-log retention and maintenance every 10 s, sampling memory, files
# and disk every 10 s (SOAK=3m by default), written to reliability/soak.csv
# and plotted in reliability/soak.svg. SOAK_RATE: checks per second.
# Not part of make test.
SOAK ?= 3m
SOAK_RATE ?= 4000

.PHONY: soak
soak:
	KEYGATE_SOAK=$(SOAK) KEYGATE_SOAK_RATE=$(SOAK_RATE) $(GO) test -count=1 -v -timeout 60m -run '^TestSoak$$' ./reliability/

# make bench: every benchmark, bounded (about 5 minutes on 2 cores).
# bench/ is its own module (peers such as OPA never become keygate's
# dependencies), so `make test` never runs it. BENCH_OUT keeps binaries,
# data, the perf profile and the outputs (*.txt).
BENCHTIME ?= 300ms
BENCH_OUT ?= /tmp/keygate-bench
LOAD_ARGS ?=

bench: bench-micro bench-store bench-load

bench-micro bench-store bench-load: SHELL := /bin/bash -o pipefail

# Engine benchmarks, bench/'s matchers side by side, the engine's check
# at 1k and 1M keys against the machine's memory latency, and gRPC
# ext_authz against HTTP forward-auth over loopback.
bench-micro:
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 -benchtime $(BENCHTIME) ./engine/ | tee $(BENCH_OUT)/engine.txt
	cd bench && $(GO) test -run '^$$' -bench 'Match|CheckKeys|MemLatency' -benchmem -cpu 1 -benchtime $(BENCHTIME) . | tee $(BENCH_OUT)/matchers.txt
	$(GO) test -run '^$$' -bench Transport -benchmem -benchtime 2s ./server/extauthz/ | tee $(BENCH_OUT)/transport.txt

# Usage-log figures from the store: ingest, compression, filtered query
# (over 1M records instead of the default 10M), CSV export; then the
# log's whole CPU time per record (500k records at 100k/s, ~10 s).
bench-store:
	@mkdir -p $(BENCH_OUT)
	$(GO) test -run '^$$' -bench 'LogIngest|Compression|QueryOneKey|ExportCSV' -benchmem -cpu 1 -benchtime $(BENCHTIME) ./store/badger/ -store.records=1000000 | tee $(BENCH_OUT)/store.txt
	$(GO) test -run '^$$' -bench 'LogCPU' -cpu 1 -benchtime 500000x ./store/badger/ | tee -a $(BENCH_OUT)/store.txt

# The daemons under load (keygate, net/http, OPA's server; servers on core
# 0, the load generator on core 1, loopback only), propagation, and scale
# at 10k/100k/1M keys: about 3 minutes. Needs taskset; perf is optional.
bench-load:
	@mkdir -p $(BENCH_OUT)
	cd bench && $(GO) test -count=1 -timeout 20m -v -run '^TestLoad$$' . -args -load -load.out $(BENCH_OUT) $(LOAD_ARGS) | tee $(BENCH_OUT)/load.txt

# Fleet mode on a local PostgreSQL (internal/pgtest): propagation p50/p99
# across 3 daemons, check throughput of a PostgreSQL-backed daemon against
# a Badger-backed one, then the PostgreSQL usage-log ingest, one-key query
# and export over PG_RECORDS records. Not part of make test (or make bench).
PG_RECORDS ?= 1000000
FLEET_ARGS ?=

bench-fleet: SHELL := /bin/bash -o pipefail
bench-fleet:
	@mkdir -p $(BENCH_OUT)
	$(GO) test -count=1 -timeout 20m -v -run '^TestBenchFleet$$' ./fleet/ -args -fleet.bench $(FLEET_ARGS) | tee $(BENCH_OUT)/fleet.txt
	$(GO) test -count=1 -timeout 60m -v -run '^TestMeasureLogs$$' ./store/postgres/ -args -pg.records=$(PG_RECORDS) | tee $(BENCH_OUT)/pg-logs.txt

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseEntry -fuzztime 60s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzTrie -fuzztime 60s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzValidSecretFormat -fuzztime 30s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzDecodeSegment -fuzztime 60s ./store/badger/
	$(GO) test -run '^$$' -fuzz FuzzWalkXFF -fuzztime 30s ./server/
	$(GO) test -run '^$$' -fuzz FuzzClientIP -fuzztime 30s ./server/
	$(GO) test -run '^$$' -fuzz FuzzParseCheckRequest -fuzztime 30s ./server/

clean:
	rm -rf bin
