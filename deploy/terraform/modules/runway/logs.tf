# Job logs: the bytes of every attempt's log, one immutable object per accepted
# chunk under `<log_prefix><job>/<attempt>/`, written and read by the function
# (crates/runway-store-dynamodb/src/logs.rs). DynamoDB holds only each attempt's
# size and CRC-32. The function gets the bucket as RUNWAY_LOG_BUCKET (lambda.tf)
# and writes under the store's default key prefix, `logs/`, which local.log_prefix
# repeats (a test in crates/runway-store-dynamodb/tests/terraform.rs keeps the two
# equal); it may only put, get and list under that prefix (iam.tf).
#
# * Encryption: the stack's customer-managed key (kms.tf), with an S3 Bucket Key so
#   that S3 asks KMS for a data key per bucket and hour, not per object: a log is
#   hundreds of small objects, and a KMS request per PUT and GET would cost more
#   than the storage.
# * No public access, by all four switches, and no ACLs (bucket-owner enforced):
#   logs are served through the API, which checks who may read them.
# * Versioning on: the function never deletes and only ever overwrites an object
#   with the same bytes (a resent chunk has the same key), so versions cost almost
#   nothing, and they let an operator undo a mistaken delete or overwrite for
#   var.job_log_noncurrent_days. Off would be as correct for the application; on is
#   the cheap insurance against people.
# * Lifecycle: objects expire var.job_log_retention_days (default 90) after they
#   were written, old versions and delete markers after job_log_noncurrent_days, and
#   unfinished multipart uploads (the code never starts one) after a day.

locals {
  # Bucket names are global: the account id keeps two accounts' stacks of the same
  # name apart. At most 20 + 1 + 20 + 6 + 12 = 59 of S3's 63 characters.
  log_bucket = coalesce(var.log_bucket_name, "${local.name}-logs-${local.account_id}")
  # Every object key starts with this (DynamoConfig::log_prefix's default); the
  # IAM policy and the lifecycle rule are scoped to it.
  log_prefix = "logs/"
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:No server access logs: reads and writes are the function's own, already in its logs and in CloudTrail (data events can be enabled per account); access logging would need a second bucket that itself needs one.
  #checkov:skip=CKV_AWS_144:No cross-region replication: job logs are working data kept for var.job_log_retention_days, not records of account; a region outage makes the API unavailable anyway, and replication would double storage and PUT cost.
  #checkov:skip=CKV2_AWS_62:No event notifications: nothing reacts to a new log chunk; the API reads logs on request.
  bucket = local.log_bucket

  # A non-empty bucket cannot be destroyed unless this is set; only outside
  # production, like the tables' deletion protection.
  force_destroy = !var.deletion_protection

  tags = merge(local.tags, { "runway:bucket" = "logs" })
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket = aws_s3_bucket.logs.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-job-logs"
    status = "Enabled"

    filter {
      prefix = local.log_prefix
    }

    expiration {
      days = var.job_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = var.job_log_noncurrent_days
    }
  }

  rule {
    id     = "clean-up"
    status = "Enabled"

    # The whole bucket: anything left by hand outside the prefix, too.
    filter {}

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  # The rules act on versions, so versioning must be configured first.
  depends_on = [aws_s3_bucket_versioning.logs]
}

# TLS only: a request over plain HTTP is refused whoever makes it.
data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  # A bucket policy is refused while the public access block is being applied.
  depends_on = [aws_s3_bucket_public_access_block.logs]
}
