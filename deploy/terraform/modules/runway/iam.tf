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
  # Exactly the DynamoDB actions the function's code calls, table by table: the
  # store tests' proxy in front of moto plays this policy and refuses any other call
  # (crates/runway-moto-proxy/src/iam.rs), so a store change that needs
  # a new permission fails its tests, and `RUNWAY_TEST_IAM_RECORD=FILE` lists what a
  # test run called. What calls each:
  #   GetItem            point reads: a user, a session, a lookup (username, token
  #                      hash), an agent, a job, a log index; the readiness ping
  #   BatchGetItem       listings: the items behind the ids an index returned
  #   Scan               has_users (Limit 1), listing registration tokens and
  #                      users, counting admins once to create the counter
  #   PutItem            new records; Put inside TransactWriteItems
  #   UpdateItem         changes of a record; Update inside TransactWriteItems;
  #                      the enabled-admin counter
  #   DeleteItem         revoking sessions, deleting agents, lookups and tokens;
  #                      taking a pending OIDC login (conditional, ALL_OLD);
  #                      clearing an abuse-limit counter
  #   ConditionCheckItem a password change's check that the user exists
  # TransactWriteItems has no IAM action of its own: each of its items is
  # authorized as the Put, Update, Delete or ConditionCheck it contains.
  table_actions = {
    # DeleteItem on users: an admin deleting a user. UpdateItem on lookups: the
    # count of enabled admins (lookups/counter#enabled_admins).
    users               = ["GetItem", "Scan", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"]
    lookups             = ["GetItem", "PutItem", "UpdateItem", "DeleteItem"]
    sessions            = ["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"]
    registration_tokens = ["GetItem", "Scan", "PutItem", "UpdateItem", "DeleteItem"]
    agents              = ["GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem"]
    # Jobs are never deleted.
    jobs = ["GetItem", "BatchGetItem", "PutItem", "UpdateItem"]
    # The audit log is append-only: not even a bug in the function can rewrite or
    # erase an event.
    audit = ["BatchGetItem", "PutItem"]
    # A pending OIDC login is put at the redirect and taken (deleted) by its
    # callback; nothing reads or updates it otherwise.
    oidc_logins = ["PutItem", "DeleteItem"]
    # Abuse-limit counters: read before a limited request, counted with UpdateItem
    # (ADD, conditional), deleted when a sign-in succeeds.
    abuse_counters = ["GetItem", "UpdateItem", "DeleteItem"]
  }

  # The code queries only these tables' GSIs (listings newest first, claimable
  # jobs, the reaper's by_lease), never a base table. `sessions` has no GSI: a
  # user's sessions are found through the user item.
  index_actions = {
    agents = ["Query"]
    jobs   = ["Query"]
    audit  = ["Query"]
  }
}

data "aws_iam_policy_document" "function" {
  dynamic "statement" {
    for_each = local.table_actions
    content {
      sid       = "Items${replace(title(replace(statement.key, "_", " ")), " ", "")}"
      actions   = [for action in statement.value : "dynamodb:${action}"]
      resources = [aws_dynamodb_table.this[statement.key].arn]
    }
  }

  dynamic "statement" {
    for_each = local.index_actions
    content {
      sid       = "Indexes${replace(title(replace(statement.key, "_", " ")), " ", "")}"
      actions   = [for action in statement.value : "dynamodb:${action}"]
      resources = ["${aws_dynamodb_table.this[statement.key].arn}/index/*"]
    }
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

  # The function's environment (it may hold the OIDC client secret), encrypted
  # with the stack's key: only Decrypt, and only when Lambda asks for it.
  statement {
    sid       = "DecryptOwnEnvironment"
    actions   = ["kms:Decrypt"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["lambda.${local.region}.amazonaws.com"]
    }
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
