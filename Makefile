# rampart — build and test entry points.
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)
FUZZTIME ?= 10s

.PHONY: build test test-unit fuzz lint bench demo

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/rampart ./cmd/rampart

# The whole suite: unit, end-to-end (real TLS sockets), the Redis tests
# against a real redis-server, and a short run of every fuzz target.
test: lint test-unit fuzz

test-unit:
	RAMPART_REQUIRE_REDIS=1 $(GO) test -count=1 -timeout 12m ./...

lint:
	@test -z "$$(gofmt -l cmd internal test)" || (gofmt -l cmd internal test; echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./internal/route/
	@if grep -q 'func FuzzParse(' internal/config/*_test.go 2>/dev/null; then $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config/; fi
	@if grep -q 'func FuzzParseHead(' internal/protoguard/*_test.go 2>/dev/null; then $(GO) test -run '^$$' -fuzz '^FuzzParseHead$$' -fuzztime $(FUZZTIME) ./internal/protoguard/; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

demo:
	$(GO) run ./cmd/rampart demo
