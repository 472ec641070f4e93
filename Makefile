# Runway — developer commands. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help run test test-lambda readme-smoke fmt lint lint-infra test-terraform lambda lambda-x86 bench clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

run: ## Serve on 127.0.0.1:8080 with the embedded SQLite store
	$(CARGO) run --release

test: ## Format check, clippy, every test (the DynamoDB store against a local moto_server, OIDC against a real oidc-provider), and the API contract (schemathesis)
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	scripts/lint-infra.sh
	scripts/moto.sh install
	scripts/oidc-provider.sh install
	# The end-to-end tests run the real agent binary, which `cargo test` does not
	# build (it builds a package's binaries only for that package's own tests).
	$(CARGO) build -p runway-agent --locked
	scripts/oidc-provider.sh run scripts/moto.sh run $(CARGO) test --workspace --locked
	# The API contract: schemathesis against a real `runway serve`, from its own
	# /openapi.json, as an admin and as a member.
	$(CARGO) build -p runway-server --bin runway --locked
	scripts/schemathesis.sh target/debug/runway

test-lambda: ## The runway binary under `cargo lambda watch` on DynamoDB (moto), fed API Gateway v2 events
	scripts/lambda-e2e.sh

readme-smoke: ## The README's `cargo run --release` and its "API at a glance" curl block, run as written
	scripts/readme-smoke.sh

lambda: ## Package the Lambda function for arm64: target/lambda/runway/bootstrap.zip
	scripts/cargo-lambda.sh build --release --arm64 --output-format zip -p runway-server --bin runway

lambda-x86: ## Package the Lambda function for x86_64: target/lambda-x86/runway/bootstrap.zip
	scripts/cargo-lambda.sh build --release --x86-64 --output-format zip --lambda-dir target/lambda-x86 -p runway-server --bin runway

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
