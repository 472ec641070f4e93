# The function's execution role, least privilege: exactly the DynamoDB actions the
# store code calls (crates/runway-store-dynamodb, listed below), on exactly its
# tables and their indexes; exactly the S3 actions of its log store, under the log
# prefix of its bucket; writing its own log group; X-Ray; and the stack's key, only
# through DynamoDB and S3. No CreateTable, DescribeTable, UpdateTimeToLive or
# CreateBucket: those are used only by `runway dynamodb create-tables` and the tests
# on an operator's machine, and Terraform owns the tables and the bucket here.

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  name               = "${local.name}-function"
  description        = "Execution role of the ${local.function_name} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

locals {
  # The audit log is append-only, so its table gets its own, narrower statement.
  table_arns = [for name, table in aws_dynamodb_table.this : table.arn if name != "audit"]
  audit_arn  = aws_dynamodb_table.this["audit"].arn
  index_arns = [for table in aws_dynamodb_table.this : "${table.arn}/index/*"]
}

data "aws_iam_policy_document" "function" {
  # Item reads and writes on the tables themselves. What calls each action:
  #   GetItem            every point read (sessions, users, lookups, agents, jobs, ping)
  #   BatchGetItem       listings: the items behind the ids a GSI returned
  #   Scan               has_users (Limit 1) and listing registration tokens
  #   PutItem            create_session, create_job, append_audit; Put inside
  #                      TransactWriteItems
  #   UpdateItem         touch_session, set_password_hash, heartbeats, agent states,
  #                      job transitions, claims, leases, attempt ends, the log
  #                      index; Update inside TransactWriteItems (a claim's job and
  #                      agent, a registration's use of its token, a token rotation)
  #   DeleteItem         revoking sessions; Delete inside TransactWriteItems
  #                      (registration tokens, agents and their lookup items)
  #   ConditionCheckItem a ConditionCheck inside TransactWriteItems (a password
  #                      change's check that the user exists)
  # TransactWriteItems has no IAM action of its own: each item in a transaction is
  # authorized as the Put/Update/Delete/ConditionCheck it contains.
  statement {
    sid = "ItemAccessOnRunwayTables"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:Scan",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:ConditionCheckItem",
    ]
    resources = local.table_arns
  }

  # The audit log: append_audit is a conditional PutItem, list_audit a BatchGetItem
  # of the ids its index returned. No UpdateItem, no DeleteItem: not even a bug in
  # the function can rewrite or erase an event.
  statement {
    sid       = "AppendAndReadAuditLog"
    actions   = ["dynamodb:PutItem", "dynamodb:BatchGetItem"]
    resources = [local.audit_arn]
  }

  # The code queries only its GSIs (listings newest first, claimable jobs, the
  # reaper's by_lease), never a base table.
  statement {
    sid       = "QueryRunwayIndexes"
    actions   = ["dynamodb:Query"]
    resources = local.index_arns
  }

  # Job logs (src/logs.rs): PutObject for a chunk, GetObject (ranged) to read one,
  # and ListObjectsV2, which is authorized as s3:ListBucket on the bucket itself,
  # limited here to listings under the log prefix. No DeleteObject: logs expire by
  # the lifecycle rule (logs.tf), never by the function.
  statement {
    sid       = "PutAndGetJobLogObjects"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.logs.arn}/${local.log_prefix}*"]
  }

  statement {
    sid       = "ListJobLogObjects"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.logs.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.log_prefix}*"]
    }
  }

  # Its own log group only; Terraform created it, so no CreateLogGroup.
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  # X-Ray has no resource-level permissions: "*" is the only possible resource.
  statement {
    sid       = "SendTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  # The stack's key, and only when DynamoDB (the tables) or S3 (the log bucket's
  # SSE-KMS: GenerateDataKey on a PUT, Decrypt on a GET) uses it on the function's
  # behalf.
  statement {
    sid       = "UseStackKeyThroughDynamoDbAndS3"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "dynamodb.${local.region}.amazonaws.com",
        "s3.${local.region}.amazonaws.com",
      ]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "runway-least-privilege"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}
