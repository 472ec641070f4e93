# The public entry point: an API Gateway HTTP API with one `$default` route that
# proxies every request to the `live` alias (payload format 2.0); the axum Router
# does the routing, authentication and error envelope itself.
#
# Why an HTTP API rather than a REST API: it costs 1.00 USD per million requests
# against 3.50 for REST (us-east-1), adds less latency, and has everything Runway
# uses: Lambda proxy, CORS, JSON access logs, stage throttling. What only REST
# offers (API keys and usage plans, request validation, WAF, response caching)
# Runway either does in the Router (validation, auth) or does not need.

resource "aws_apigatewayv2_api" "this" {
  name          = local.name
  description   = "Runway control plane API (${var.environment})"
  protocol_type = "HTTP"

  # API Gateway answers preflight requests itself and overrides the function's
  # CORS headers when this is set, so it mirrors the Router's configuration
  # (docs/http-api.md) from the same variable. No CORS at all when the list is empty.
  dynamic "cors_configuration" {
    for_each = length(var.cors_origins) > 0 ? [var.cors_origins] : []
    content {
      allow_origins  = cors_configuration.value
      allow_methods  = ["GET", "POST", "DELETE", "OPTIONS"]
      allow_headers  = ["authorization", "content-type", "x-request-id"]
      expose_headers = ["x-request-id", "etag"]
      max_age        = 600
    }
  }

  tags = local.tags
}

resource "aws_apigatewayv2_integration" "live" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_method     = "POST"
  integration_uri        = aws_lambda_alias.live.invoke_arn
  payload_format_version = "2.0"
  # The HTTP API maximum; the function's own timeout (29 s) ends first, so a slow
  # request gets Runway's error, not a bare gateway timeout.
  timeout_milliseconds = 30000
}

resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:Authentication is the application's: session tokens, agent tokens and registration tokens are checked by the Router on every route that needs them, and /health, /api/v1/info and sign-in must stay public. A gateway authorizer would add a second Lambda call per request.
  api_id    = aws_apigatewayv2_api.this.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.live.id}"
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (validated; 365 in production). Staging keeps 30 days on purpose.
  name              = "/aws/apigateway/${local.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    # Stage-wide limits in front of reserved concurrency: excess requests get a
    # cheap 429 from the gateway instead of a Lambda throttle.
    throttling_rate_limit  = var.api_throttling_rate_limit
    throttling_burst_limit = var.api_throttling_burst_limit
  }

  # One JSON object per request. lambdaRequestId finds the invocation in the
  # function's log group (its REPORT line), requestId the gateway's side.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId         = "$context.requestId"
      lambdaRequestId   = "$context.integration.requestId"
      ip                = "$context.identity.sourceIp"
      userAgent         = "$context.identity.userAgent"
      requestTime       = "$context.requestTime"
      httpMethod        = "$context.httpMethod"
      path              = "$context.path"
      protocol          = "$context.protocol"
      status            = "$context.status"
      responseLength    = "$context.responseLength"
      latencyMs         = "$context.responseLatency"
      integrationMs     = "$context.integration.latency"
      integrationStatus = "$context.integration.status"
      integrationError  = "$context.integrationErrorMessage"
      error             = "$context.error.message"
    })
  }

  tags = local.tags
}

# API Gateway may invoke the `live` alias, and only from this API.
resource "aws_lambda_permission" "api" {
  statement_id  = "AllowInvokeFromHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  qualifier     = aws_lambda_alias.live.name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*"
}
