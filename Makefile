# Parley: a small, fast, self-contained XMPP server.
# make run   - start a server on the embedded default config (host localhost)
# make test  - vet, gofmt check, and every test with the race detector
# make webclient - fetch Converse.js (pinned in web/converse) for /chat

GO      ?= go
BIN     := bin/parley
PKGS    := ./...
FUZZTIME ?= 10s

# The shipped build frees an idle TLS session's handshake buffers by
# reaching into crypto/tls (c2s/idlemem_tls.go, guarded by its tripwire
# test): without it an idle session costs 13.5-14.6 KiB instead of
# 9.1-9.6 (BENCHMARKS.md, 2026-12-06). `make TAGS= ...` builds without.
# TAGS is comma-separated; it replaces any -tags in GOFLAGS (the go
# command keeps only the last -tags), and the rest of GOFLAGS is kept.
TAGS    ?= parley_tlsmem
override GOFLAGS := $(strip $(filter-out -tags=%,$(GOFLAGS)) $(if $(TAGS),-tags=$(TAGS)))
export GOFLAGS

.PHONY: all build run webclient test vet fmt-check bench fuzz fuzz-long clean loadtest latency compare slowconsumers

all: build

build:
	$(GO) build -o $(BIN) ./cmd/parley

# /chat serves Converse.js from bin/webclient when `make webclient` has
# fetched it; without it, say once how to get it.
WEBCLIENT := bin/webclient

run: build
	@test -f $(WEBCLIENT)/converse.min.js || \
		echo "parley: no web client at /chat yet; run \`make webclient\` (needs npm) to serve Converse.js there"
	./$(BIN) serve

# Converse.js exactly as web/converse/package-lock.json pins it, its dist
# copied to bin/webclient (not committed), where bin/parley looks for it.
webclient:
	npm ci --prefix web/converse --no-audit --no-fund --ignore-scripts
	rm -rf $(WEBCLIENT)
	mkdir -p bin
	cp -R web/converse/node_modules/converse.js/dist $(WEBCLIENT)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

test: vet fmt-check
	$(GO) test -race -count=1 $(PKGS)
	# The sessions without the crypto/tls reach, as `make TAGS=` builds them.
	GOFLAGS='$(filter-out -tags=%,$(GOFLAGS))' $(GO) test -count=1 ./c2s/...
	# A room of 1,000 occupants, too slow under the race detector.
	$(GO) test -count=1 -run 'TestRoomFanOut' ./components/muc/

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Short runs of every fuzz target (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Every fuzz target for 10 minutes each (10 targets today: 100 minutes);
# what a run finds is written under the package's testdata/fuzz.
fuzz-long:
	$(MAKE) fuzz FUZZTIME=10m

clean:
	rm -rf bin

# Parley under load from cmd/parley-load: starts a server on loopback with a
# throwaway config and runs the login, msg, idle and bot scenarios (sizes for a
# 2-core machine; see scripts/loadtest.sh to change them).
loadtest:
	GO=$(GO) ./scripts/loadtest.sh

# Message latency under a paced load: the peak msgs/s of an unpaced run, then
# p99 at a fraction of it (FRACTION=0.5, RUNS=3, RATE=N to skip the peak run:
# see scripts/latency.sh).
latency:
	GO=$(GO) ./scripts/latency.sh

# Parley against Prosody 0.12 (installed from Debian when missing) on loopback:
# the same parley-load scenarios on each, in alternation; prints min / median /
# max per server and the Parley / Prosody ratios (RUNS and the sizes: see
# scripts/compare.sh).
compare:
	GO=$(GO) ./scripts/compare.sh

# Slow consumers (issue #17): msg runs without and with a client that never
# reads and a bot whose webhook never answers, alternated (RUNS=3 each, 20 s
# runs); prints each run, both medians, their ratio and the server's peak
# RSS (the sizes and rates: see scripts/slowconsumers.sh).
slowconsumers:
	GO=$(GO) ./scripts/slowconsumers.sh
