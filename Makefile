# keygate: `make run` starts the daemon, `make test` runs the tests.
GO      ?= go
BIN     := bin/keygate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: build run test test-race bench fuzz clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keygate

# ARGS passes extra flags, e.g. make run ARGS='--trusted-proxies 10.0.0.0/8'.
ARGS    ?=

run: build
	./$(BIN) serve $(ARGS)

test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -count=1 -run 'Race|Concurrent' ./...

# make soak: minutes of steady load on the real binary with a 60 s
# usage-log retention and maintenance every 10 s, sampling memory, files
# and disk every 10 s (SOAK=3m by default). Not part of make test.
SOAK ?= 3m

.PHONY: soak
soak:
	KEYGATE_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 60m -run '^TestSoak$$' ./reliability/

bench:
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./engine/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseEntry -fuzztime 60s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzTrie -fuzztime 60s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzValidSecretFormat -fuzztime 30s ./engine/
	$(GO) test -run '^$$' -fuzz FuzzDecodeSegment -fuzztime 60s ./store/
	$(GO) test -run '^$$' -fuzz FuzzWalkXFF -fuzztime 30s ./server/
	$(GO) test -run '^$$' -fuzz FuzzParseCheckRequest -fuzztime 30s ./server/

clean:
	rm -rf bin
