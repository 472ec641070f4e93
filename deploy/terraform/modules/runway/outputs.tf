output "api_url" {
  description = "Base URL of the API, e.g. https://abc123.execute-api.eu-west-1.amazonaws.com (no trailing slash)."
  value       = trimsuffix(aws_apigatewayv2_stage.default.invoke_url, "/")
}

output "function_name" {
  description = "Name of the Lambda function."
  value       = aws_lambda_function.this.function_name
}

output "function_version" {
  description = "The newest published version: what the deploy workflow shifts `live` to."
  value       = aws_lambda_function.this.version
}

output "alias_name" {
  description = "Name of the alias API Gateway invokes."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the `live` alias."
  value       = aws_lambda_alias.live.arn
}

output "codedeploy_app" {
  description = "CodeDeploy application that shifts the alias."
  value       = aws_codedeploy_app.this.name
}

output "codedeploy_deployment_group" {
  description = "CodeDeploy deployment group (carries the canary configuration and rollback alarms)."
  value       = aws_codedeploy_deployment_group.live.deployment_group_name
}

output "table_prefix" {
  description = "RUNWAY_DYNAMODB_TABLE_PREFIX, for running `runway admin` against these tables."
  value       = local.table_prefix
}

output "table_names" {
  description = "DynamoDB table names by suffix."
  value       = { for suffix, table in aws_dynamodb_table.this : suffix => table.name }
}

output "log_bucket" {
  description = "RUNWAY_LOG_BUCKET: the S3 bucket holding job logs."
  value       = aws_s3_bucket.logs.id
}

output "kms_key_arn" {
  description = "The customer-managed key encrypting the tables, job logs, log groups and alarm topic."
  value       = local.kms_key_arn
}

output "alarm_topic_arn" {
  description = "SNS topic every alarm notifies."
  value       = aws_sns_topic.alarms.arn
}
