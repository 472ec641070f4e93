# The function's execution role, least privilege: exactly the DynamoDB actions the
# store code calls (crates/runway-store-dynamodb, listed below), on exactly its
# tables and their indexes; writing its own log group; X-Ray; and the table key,
# only through DynamoDB. No CreateTable, DescribeTable or UpdateTimeToLive: those
# are used only by `runway dynamodb create-tables` on an operator's machine, and
# Terraform owns the tables here.

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
  #   UpdateItem         touch_session, set_password_hash, heartbeats, job transitions
  #   DeleteItem         revoking sessions; Delete inside TransactWriteItems
  #   ConditionCheckItem the registration-token check inside TransactWriteItems
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

  # The code queries only its GSIs (listings newest first), never a base table.
  statement {
    sid       = "QueryRunwayIndexes"
    actions   = ["dynamodb:Query"]
    resources = local.index_arns
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

  # The table key, and only when DynamoDB uses it on the function's behalf.
  statement {
    sid       = "UseTableKeyThroughDynamoDb"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "function" {
  name   = "runway-least-privilege"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}
