output "api_url" {
  description = "Base URL of the staging API."
  value       = module.runway.api_url
}

output "function_name" {
  description = "Lambda function name."
  value       = module.runway.function_name
}

output "function_version" {
  description = "Newest published version (the deploy workflow shifts `live` to it)."
  value       = module.runway.function_version
}

output "alias_name" {
  description = "The alias API Gateway invokes."
  value       = module.runway.alias_name
}

output "alias_arn" {
  description = "ARN of the `live` alias."
  value       = module.runway.alias_arn
}

output "codedeploy_app" {
  description = "CodeDeploy application."
  value       = module.runway.codedeploy_app
}

output "codedeploy_deployment_group" {
  description = "CodeDeploy deployment group."
  value       = module.runway.codedeploy_deployment_group
}

output "table_prefix" {
  description = "RUNWAY_DYNAMODB_TABLE_PREFIX of this environment."
  value       = module.runway.table_prefix
}

output "table_names" {
  description = "DynamoDB table names."
  value       = module.runway.table_names
}
