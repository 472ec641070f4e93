# Staging: the production shape at the lowest cost. On-demand tables (no capacity
# to plan, nothing paid when idle), no reserved concurrency, deletion protection
# off so the environment can be torn down and rebuilt, 30 days of logs.
# Encryption with a customer-managed key, point-in-time recovery, alarms and the
# canary deployment are the same as production: those are what staging is for.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # State lives in S3 (see DEPLOYMENT.md, "Bootstrap the state bucket"). The values
  # are given at init time, so nothing account-specific is committed:
  #
  #   terraform init \
  #     -backend-config="bucket=<state bucket>" \
  #     -backend-config="key=runway/staging.tfstate" \
  #     -backend-config="region=<region>" \
  #     -backend-config="encrypt=true" \
  #     -backend-config="use_lockfile=true"    # Terraform >= 1.10; older: dynamodb_table=<lock table>
  #
  # No credentials belong here: they come from the environment (an SSO profile on
  # a laptop, the OIDC role in GitHub Actions).
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "app"         = "runway"
      "environment" = "staging"
      "managed-by"  = "terraform"
      "repository"  = "runway"
    }
  }
}

module "runway" {
  source = "../../modules/runway"

  environment     = "staging"
  lambda_zip_path = var.lambda_zip_path

  billing_mode         = "PAY_PER_REQUEST"
  reserved_concurrency = -1
  deletion_protection  = false
  log_retention_days   = 30
  log_level            = "info"

  cors_origins = var.cors_origins

  job_log_retention_days = var.job_log_retention_days

  # Deliberately small: staging is for people and CI smoke tests, and a limit here
  # also caps what a runaway client can cost.
  api_throttling_rate_limit  = 20
  api_throttling_burst_limit = 40

  alarm_subscriptions = var.alarm_subscriptions
}
