# Production: provisioned capacity with auto scaling on every table and GSI (cheaper
# than on demand for steady load, see DEPLOYMENT.md, "Cost"), reserved concurrency
# 100, a customer-managed key, deletion protection, a year of logs. Deployed by the
# `production` GitHub environment, which requires an approval.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # State in S3, configured at init time (see environments/staging/main.tf and
  # DEPLOYMENT.md): key=runway/production.tfstate. Production should use its own
  # AWS account, and so its own state bucket.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      "app"         = "runway"
      "environment" = "production"
      "managed-by"  = "terraform"
      "repository"  = "runway"
    }
  }
}

module "runway" {
  source = "../../modules/runway"

  environment     = "production"
  lambda_zip_path = var.lambda_zip_path

  billing_mode = "PROVISIONED"
  # Floors sized for steady load; auto scaling adds capacity above them. Sessions
  # are read on every user request (1 RCU each), agents on every agent call.
  #
  # GSI floors matter more than table floors: every `terraform apply` (every
  # deployment) resets a GSI's capacity to its floor, because Terraform cannot
  # ignore capacity per index (see modules/runway/dynamodb.tf), and a GSI short of
  # write capacity throttles writes to its table. So an index's write floor keeps
  # up with its table's write floor: a job transition changes the by_status key
  # (2 index writes: the old entry out, the new one in), hence twice the jobs
  # table's floor.
  default_capacity = {
    read_min  = 5
    read_max  = 500
    write_min = 5
    write_max = 200
  }
  capacity_overrides = {
    "sessions"       = { read_min = 25, read_max = 2000, write_min = 10, write_max = 500 }
    "lookups"        = { read_min = 10, read_max = 1000, write_min = 5, write_max = 200 }
    "agents"         = { read_min = 10, read_max = 1000, write_min = 10, write_max = 500 }
    "jobs/by_status" = { read_min = 5, read_max = 500, write_min = 10, write_max = 400 }
  }
  autoscaling_target_utilization = 70

  reserved_concurrency = 100
  deletion_protection  = true
  log_retention_days   = 365
  log_level            = "info"

  cors_origins = var.cors_origins

  job_log_retention_days = var.job_log_retention_days

  api_throttling_rate_limit  = 500
  api_throttling_burst_limit = 1000

  alarm_api_5xx_percent    = 1
  alarm_api_p99_latency_ms = 1000
  alarm_subscriptions      = var.alarm_subscriptions
}
