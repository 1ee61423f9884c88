# Herald's tasks. `make help` lists them.
SHELL := /bin/bash
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/herald_demo?sslmode=disable
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export TEST_DATABASE_URL
BENCH_ARGS ?=
CHAOS_ARGS ?=
GO ?= go

.PHONY: help demo test test/short fuzz/short bench bench/sources chaos chaos/short build lint verify db/clean

help: ## list the tasks
	@grep -E '^[a-z/]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## build, migrate DATABASE_URL, run a receiver and herald, send sample messages, show them arrive
	@DATABASE_URL='$(DATABASE_URL)' ./scripts/demo.sh

test: ## run every test against PostgreSQL (TEST_DATABASE_URL), with the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

test/short: ## tests without the race detector
	$(GO) test -count=1 ./...

# Each fuzz target as package:Target. go test -fuzz takes one at a time.
FUZZ_TARGETS := \
	./cmd/herald/internal/config:FuzzParse \
	./cmd/herald/internal/ops:FuzzRowEndpoint \
	./cmd/herald/internal/admin:FuzzEndpointBody \
	./cmd/herald/internal/ops:FuzzMessageInputs \
	./webhook:FuzzParseRetryAfter \
	./webhook:FuzzVerifySignatureHeader \
	./webhook:FuzzH1Response \
	./webhook:FuzzMessageValidation \
	./webhook:FuzzEndpointURL \
	./webhook:FuzzParseHeaders
# An execution count, not a duration: a duration-based -fuzztime fails at
# random with "context deadline exceeded" on a busy machine (golang/go#75804,
# fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 20000x

fuzz/short: ## run each fuzz target for FUZZTIME (20000x: executions); a crasher is written under the package's testdata/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) "$${t%%:*}"; \
	done

bench: ## measure throughput, latency and costs (see docs/performance.md); BENCH_ARGS=-quick for a smoke run
	$(GO) run ./cmd/herald-bench $(BENCH_ARGS)

bench/sources: ## one herald relaying two databases vs two heralds with one each (N=50000 per database)
	./scripts/bench-sources.sh

chaos: ## fault suite, long form: the real herald under SIGKILL, PostgreSQL restarts, hostile endpoints, fault proxies, operator mistakes (CHAOS_ARGS=-markdown for docs/guarantees.md)
	$(GO) run ./cmd/herald-chaos $(CHAOS_ARGS)

chaos/short: ## fault suite, short form (seconds per scenario; CI runs it as TestChaosShort)
	$(GO) run ./cmd/herald-chaos -short $(CHAOS_ARGS)

build: ## build bin/herald and bin/herald-receiver
	$(GO) build -o bin/ ./cmd/herald ./cmd/herald-receiver

lint: ## gofmt, go vet, and go.mod tidy (go mod tidy -diff changes nothing)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

verify: lint test ## what CI runs

db/clean: ## drop test databases left behind by interrupted test runs
	@psql "$(TEST_DATABASE_URL)" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'herald_test_%' OR datname LIKE 'herald_tpl_%'" | \
		while read -r db; do psql "$(TEST_DATABASE_URL)" -qc "DROP DATABASE \"$$db\" WITH (FORCE)"; done
