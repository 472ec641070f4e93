# The reaper's clock on AWS: an EventBridge rule invokes the `live` alias every
# minute with a "Scheduled Event", which the function tells apart from API Gateway
# events (runway-server/src/lambda.rs) and answers with one reaper pass: expired
# leases become `lost` (and are retried), jobs far past their timeout `timed_out`,
# jobs queued past RUNWAY_QUEUE_TTL_SECONDS `expired`. Claims also run a pass
# opportunistically, so lost work comes back sooner while agents are polling.
#
# Cost: 43,200 invocations a month of a few milliseconds each at 128 MB, well
# inside the free tier (DEPLOYMENT.md has the arithmetic).

resource "aws_cloudwatch_event_rule" "reaper" {
  name                = "${local.name}-reaper"
  description         = "Runs Runway's reaper every minute"
  schedule_expression = "rate(1 minute)"
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "reaper" {
  rule      = aws_cloudwatch_event_rule.reaper.name
  target_id = "runway-reaper"
  arn       = aws_lambda_alias.live.arn

  retry_policy {
    # A missed tick is made up by the next one a minute later; retrying an old
    # tick only doubles the work.
    maximum_retry_attempts       = 0
    maximum_event_age_in_seconds = 60
  }
}

# EventBridge may invoke the `live` alias, and only from this rule.
resource "aws_lambda_permission" "reaper" {
  statement_id  = "AllowInvokeFromReaperSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.reaper.arn
}
