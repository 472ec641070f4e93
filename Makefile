# Runway — developer commands. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test fmt lint lint-infra test-terraform bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## Serve on 127.0.0.1:8080 with the embedded SQLite store
	$(CARGO) run --release

test: ## Format check, clippy, and every test (the DynamoDB store against a local moto_server)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/lint-infra.sh
	scripts/moto.sh install
	scripts/moto.sh run $(CARGO) test --workspace

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Clippy with warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

lint-infra: ## checkov on deploy/terraform, zizmor and actionlint on .github/workflows
	scripts/lint-infra.sh

test-terraform: ## Terraform's tables match runway_store_dynamodb::schema() (no moto needed)
	$(CARGO) test -p runway-store-dynamodb --test terraform

bench: ## Measure throughput, latency, cold start and memory; writes BENCHMARKS.md
	bash bench/run.sh

clean: ## Remove build output
	$(CARGO) clean
