# rampart — build and test entry points.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)
# Each fuzz target runs a count of inputs, about 10 s on a 2-core machine,
# not a duration: Go 1.26's fuzzing coordinator can fail a run that ends on
# a wall-clock -fuzztime with "context deadline exceeded" while a worker is
# still busy (golang/go#75804, fixed in Go 1.27), a spurious failure with no
# failing input. A count has no deadline to race. FUZZSCALE multiplies the
# counts (FUZZSCALE=10 for a longer run). New inputs are minimized 10 runs
# at most: with Go's default of 60 s the workers spent a short run minimizing.
FUZZSCALE ?= 1
FUZZFLAGS ?= -fuzzminimizetime 10x
fuzzrun = $(GO) test -run '^$$' -fuzz '^$(1)$$' -fuzztime $(shell echo $$(($(2) * $(FUZZSCALE))))x $(FUZZFLAGS) $(3)

.PHONY: build test test-unit fuzz lint bench demo

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rampart ./cmd/rampart

# The whole suite: unit, end-to-end (real TLS sockets), the Redis tests
# against a real redis-server, the audit against Debian's nginx, the
# real-browser test in Chromium, and a short run of every fuzz target.
# Needs redis-server, nginx and chromium installed (.ci/run installs them).
test: lint test-unit fuzz

test-unit:
	RAMPART_REQUIRE_REDIS=1 RAMPART_REQUIRE_NGINX=1 RAMPART_REQUIRE_BROWSER=1 RAMPART_REQUIRE_DEPLOY_TOOLS=1 $(GO) test -count=1 -timeout 12m ./...

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l cmd internal test profiles bench)" || (gofmt -l cmd internal test profiles bench; echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fuzz:
	$(call fuzzrun,FuzzNormalize,400000,./internal/route/)
	$(call fuzzrun,FuzzParse,20000,./internal/config/)
	$(call fuzzrun,FuzzParseHead,100000,./internal/protoguard/)
	$(call fuzzrun,FuzzAccessLine,100000,./internal/observe/)
	$(call fuzzrun,FuzzPrefilter,20000,./internal/waf/)

bench: bench-go bench-load

# Go micro-benchmarks of the packages, GOBENCH_COUNT samples each, written
# to bench/go/latest.txt and compared by benchstat with the committed
# bench/go/baseline.txt (the figures of the last accepted change; take new
# ones with make bench-go-baseline after a change that moves them).
.PHONY: bench-go bench-go-baseline bench-load
BENCHSTAT ?= golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
GOBENCH_COUNT ?= 6
bench-go:
	@mkdir -p bench/go
	$(GO) test -run '^$$' -bench . -benchmem -count $(GOBENCH_COUNT) ./internal/... > bench/go/latest.txt || (cat bench/go/latest.txt; exit 1)
	@if [ -f bench/go/baseline.txt ]; then $(GO) run $(BENCHSTAT) bench/go/baseline.txt bench/go/latest.txt; \
	else $(GO) run $(BENCHSTAT) bench/go/latest.txt; fi

bench-go-baseline:
	cp bench/go/latest.txt bench/go/baseline.txt

# Load benchmark on loopback against nginx, haproxy, caddy and
# nginx+ModSecurity (bench/README.md); writes bench/RESULTS.md.
# Development run: make bench-load BENCH_FLAGS=-quick
BENCH_FLAGS ?= -runs 3 -d 5s
bench-load:
	sh bench/install-peers.sh
	$(GO) run ./bench/run $(BENCH_FLAGS)

demo:
	$(GO) run ./cmd/rampart demo
