# Strata — see README.md. Every target works from a clean clone; `make test`
# installs what it needs first (scripts/deps.sh is idempotent and fast when
# nothing is missing).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
BIN       := $(CURDIR)/bin
BUF       := $(GO) tool -modfile=proto/buf.tools.mod buf
PG_CONFIG ?= $(shell command -v pg_config 2>/dev/null || echo /usr/lib/postgresql/15/bin/pg_config)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Integration tests start real PostgreSQL clusters; keep the package
# parallelism modest on small machines.
TEST_FLAGS ?= -count=1 -timeout 25m -p 2
# Packages whose concurrency is worth the race detector's cost in `make test`.
RACE_PKGS ?= ./internal/seqwait/... ./services/pageserver ./services/pageserver/server/... ./services/pageserver/pagecache/... ./services/pageserver/ephemeral/... ./services/pageserver/inmemory/... ./services/pageserver/timeline/...

GO_FILES = $(shell git ls-files -co --exclude-standard '*.go' | grep -v '^proto/gen/')
COMMANDS := cmd/stratactl $(wildcard services/*/cmd/*)

.PHONY: deps build build-go build-ext proto proto-check verify-proto lint fmt test test-unit test-race bench demo clean help deploy-check docs verify-docs

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

deps: ## install (idempotently) Debian packages and Go tools the project needs
	@./scripts/deps.sh

build: build-go build-ext ## build every binary into ./bin and the walredo extension

build-go:
	@mkdir -p $(BIN)
	$(GO) build ./...
	@for c in $(COMMANDS); do \
		echo "go build -o bin/$$(basename $$c) ./$$c"; \
		$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/$$(basename $$c) ./$$c; \
	done

build-ext:
	@if [ -f services/walredo/pgext/Makefile ]; then \
		$(MAKE) --no-print-directory -C services/walredo/pgext PG_CONFIG=$(PG_CONFIG); \
	fi

proto: ## regenerate proto/gen from proto/strata (buf from its own modfile, design D1)
	$(BUF) format -w
	$(BUF) lint
	$(BUF) generate --template proto/buf.gen.yaml

proto-check: proto ## fail when generated code is stale or the protos are not buf-formatted
	@git diff --exit-code -- proto/ buf.yaml || { echo "proto-check: proto/ changed after 'make proto': commit the regenerated code" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- proto/)" || { git status --porcelain -- proto/; echo "proto-check: untracked files in proto/ after 'make proto'" >&2; exit 1; }
	@echo "proto-check: generated code is up to date"

verify-proto: proto-check

fmt: ## gofmt -w the tree
	gofmt -s -w $(GO_FILES)

lint: deps ## gofmt, go vet, staticcheck, buf lint
	@bad=$$(gofmt -s -l $(GO_FILES)); if [ -n "$$bad" ]; then echo "gofmt -s would change:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...
	$(BUF) lint
	@echo "lint: ok"

test: deps build-ext ## unit + integration tests (real PostgreSQL 15), race detector on concurrent packages
	$(BIN)/gotestsum --format pkgname --format-hide-empty-pkg -- $(TEST_FLAGS) ./...
	$(MAKE) --no-print-directory test-race

test-unit: ## fast tests only (no PostgreSQL)
	$(GO) test -count=1 -short ./...

test-race:
	@pkgs=$$($(GO) list $(RACE_PKGS) 2>/dev/null || true); \
	if [ -n "$$pkgs" ]; then $(BIN)/gotestsum --format pkgname -- -race -count=1 -timeout 10m $$pkgs; fi

bench: deps build-ext ## run every benchmark next to its baseline and rewrite bench/RESULTS.md (4-6 min on 2 cores)
	$(GO) run ./cmd/strata-bench

deploy-check: deps ## validate deploy/ offline: compose schema, Kubernetes strict decode, Dockerfile lint
	docker-compose -f deploy/compose.yaml config -q
	cd deploy && GOWORK=off $(GO) test -count=1 ./...
	@echo "deploy-check: ok"

docs: ## regenerate docs/config-reference.md and the metrics table of docs/operations.md
	$(GO) run ./cmd/strata-configdoc

verify-docs: ## fail when the generated docs are stale
	$(GO) run ./cmd/strata-configdoc -check

demo: deps build ## the main job: attach a primary, drop a table, branch before the drop, boot the branch (KEEP=1 keeps it running)
	@./scripts/demo.sh

clean:
	rm -rf $(BIN)
	@if [ -f services/walredo/pgext/Makefile ]; then $(MAKE) -C services/walredo/pgext clean PG_CONFIG=$(PG_CONFIG); fi
