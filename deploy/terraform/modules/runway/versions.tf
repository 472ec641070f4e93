# Terraform 1.6 or later (`endswith()` in the validations needs 1.5; 1.6 is the
# oldest release this module is written for) and the AWS provider 5.x:
# `logging_config` on Lambda functions and `deletion_protection_enabled` on DynamoDB
# tables arrived during 5.x, and 6.x changed enough (`aws_region.name` among
# others) that moving to it should be a deliberate upgrade.
terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # Every resource name starts with this, e.g. `runway-staging`.
  name = "${var.name}-${var.environment}"

  # Table names are `{prefix}{suffix}`, exactly as the Lambda reads them from
  # RUNWAY_DYNAMODB_TABLE_PREFIX.
  table_prefix = coalesce(var.table_prefix, "${local.name}-")

  provisioned = var.billing_mode == "PROVISIONED"

  tags = merge(var.tags, {
    "runway:environment" = var.environment
  })
}
