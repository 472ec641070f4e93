variable "region" {
  description = "AWS region to deploy into (the provider's region). The deploy workflow sets it from the GitHub environment's AWS_REGION (TF_VAR_region), so Terraform, the alias shift and the smoke test all work in the same region."
  type        = string
  default     = "us-east-1"

  validation {
    # us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, …: a typo fails the
    # plan here instead of an apply into a region nobody meant.
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-west-1."
  }
}

variable "lambda_zip_path" {
  description = "bootstrap.zip from `make lambda`, relative to this directory."
  type        = string
  default     = "../../../../target/lambda/runway/bootstrap.zip"
}

variable "cors_origins" {
  description = "Browser origins allowed to call the API (empty: none)."
  type        = list(string)
  default     = []
}

variable "alarm_subscriptions" {
  description = "Where alarm notifications go, e.g. [{ protocol = \"email\", endpoint = \"oncall@example.com\" }]."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []
}

variable "job_log_retention_days" {
  description = "Days job logs stay in the S3 bucket before its lifecycle rule deletes them (the deploy workflow sets it from RUNWAY_LOG_RETENTION_DAYS)."
  type        = number
  default     = 90
}
