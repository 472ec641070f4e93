# CloudWatch alarms and where they go. DEPLOYMENT.md ("Monitoring and alarms") says
# what each one means and what to do. Every alarm treats missing data as fine: no
# traffic is not an outage, and /health checks belong to an external prober.

resource "aws_sns_topic" "alarms" {
  name              = "${local.name}-alarms"
  kms_master_key_id = local.kms_key_arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "alarms" {
  for_each = { for s in var.alarm_subscriptions : "${s.protocol}:${s.endpoint}" => s }

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]

  api_dimensions = {
    ApiId = aws_apigatewayv2_api.this.id
    Stage = aws_apigatewayv2_stage.default.name
  }

  # Alias-level metrics: during a canary they cover both versions behind `live`.
  function_dimensions = {
    FunctionName = aws_lambda_function.this.function_name
    Resource     = "${aws_lambda_function.this.function_name}:${aws_lambda_alias.live.name}"
  }

  # The operations the store calls, for SystemErrors (a per-operation metric).
  dynamodb_operations = ["GetItem", "BatchGetItem", "Scan", "PutItem", "UpdateItem", "DeleteItem", "Query", "TransactWriteItems"]

  # Alarms that make CodeDeploy roll a canary back: the ones a bad release trips
  # within minutes. Latency and DynamoDB alarms are left out: they follow load
  # more than code, and rolling back would not help.
  rollback_alarms = [
    aws_cloudwatch_metric_alarm.api_5xx_rate,
    aws_cloudwatch_metric_alarm.lambda_errors,
  ]
}

# More than var.alarm_api_5xx_percent of requests answered 5xx in a minute.
# Runway answers a client mistake with a 4xx, so any 5xx is the server's fault: a
# bug (500), the store unavailable or throttled (503), or the gateway unable to
# reach the function (502/504). Below 20 requests a minute the rate is noise.
resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  alarm_name          = "${local.name}-api-5xx-rate"
  alarm_description   = "More than ${var.alarm_api_5xx_percent}% of API requests answered 5xx in a minute (${var.environment}). See DEPLOYMENT.md, Monitoring."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_api_5xx_percent
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "5xx"
      dimensions  = local.api_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApiGateway"
      metric_name = "Count"
      dimensions  = local.api_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id          = "rate"
    label       = "5xx percent"
    expression  = "IF(requests >= 20, 100 * errors / requests, 0)"
    return_data = true
  }

  tags = local.tags
}

# p99 latency above var.alarm_api_p99_latency_ms for five minutes in a row.
resource "aws_cloudwatch_metric_alarm" "api_p99_latency" {
  alarm_name          = "${local.name}-api-p99-latency"
  alarm_description   = "API p99 latency above ${var.alarm_api_p99_latency_ms} ms for 5 minutes (${var.environment}). See DEPLOYMENT.md, Monitoring."
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = local.api_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_api_p99_latency_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# Any invocation error. Runway turns every handled failure into an HTTP response,
# so a Lambda error is a panic, a timeout, or a failed cold start: always a bug or
# a broken release, never a client.
resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  alarm_name          = "${local.name}-lambda-errors"
  alarm_description   = "The live alias of ${local.function_name} failed invocations (panic, timeout or init failure). See DEPLOYMENT.md, Monitoring."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = local.function_dimensions
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# Requests refused for lack of concurrency (the reservation, or the account limit).
resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  alarm_name          = "${local.name}-lambda-throttles"
  alarm_description   = "The live alias of ${local.function_name} was throttled in 2 of the last 5 minutes. See DEPLOYMENT.md, Monitoring."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = local.function_dimensions
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# Throttled reads or writes on a table or any of its GSIs, in 2 of 5 minutes. GSI
# write throttling is included because it throttles writes to the base table.
# One alarm reads at most 10 metrics (a hard CloudWatch limit): the table's two and
# two per GSI, so a table may have at most four GSIs (jobs has exactly four);
# crates/runway-store-dynamodb/tests/terraform.rs checks it.
resource "aws_cloudwatch_metric_alarm" "dynamodb_throttles" {
  for_each = aws_dynamodb_table.this

  alarm_name          = "${local.name}-dynamodb-${each.key}-throttles"
  alarm_description   = "DynamoDB throttled requests on ${each.value.name} or its indexes. See DEPLOYMENT.md, Monitoring."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 5
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  dynamic "metric_query" {
    for_each = concat(
      [for kind in ["Read", "Write"] : { id = "table${lower(kind)}", metric = "${kind}ThrottleEvents", dimensions = { TableName = each.value.name } }],
      flatten([
        for i, index in keys(local.tables[each.key].indexes) : [
          for kind in ["Read", "Write"] : {
            id         = "index${i}${lower(kind)}"
            metric     = "${kind}ThrottleEvents"
            dimensions = { TableName = each.value.name, GlobalSecondaryIndexName = index }
          }
        ]
      ]),
    )
    content {
      id = metric_query.value.id
      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = metric_query.value.metric
        dimensions  = metric_query.value.dimensions
        period      = 60
        stat        = "Sum"
      }
    }
  }

  metric_query {
    id          = "throttled"
    label       = "throttle events"
    expression  = "SUM(METRICS())"
    return_data = true
  }

  tags = local.tags
}

# DynamoDB answered 5xx (its own internal errors) to any operation the store calls.
resource "aws_cloudwatch_metric_alarm" "dynamodb_system_errors" {
  for_each = aws_dynamodb_table.this

  alarm_name          = "${local.name}-dynamodb-${each.key}-system-errors"
  alarm_description   = "DynamoDB returned internal errors for ${each.value.name} in 2 of 5 minutes. See DEPLOYMENT.md, Monitoring."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 5
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  dynamic "metric_query" {
    for_each = local.dynamodb_operations
    content {
      id = "op${metric_query.key}"
      metric {
        namespace   = "AWS/DynamoDB"
        metric_name = "SystemErrors"
        dimensions  = { TableName = each.value.name, Operation = metric_query.value }
        period      = 60
        stat        = "Sum"
      }
    }
  }

  metric_query {
    id          = "errors"
    label       = "system errors"
    expression  = "SUM(METRICS())"
    return_data = true
  }

  tags = local.tags
}
