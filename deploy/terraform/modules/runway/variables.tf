# Inputs of the Runway module. Every variable is typed, described, and validated
# where a wrong value would otherwise surface only as an AWS API error mid-apply.

# --- Naming -----------------------------------------------------------------------

variable "name" {
  description = "Service name, the first part of every resource name (`<name>-<environment>`)."
  type        = string
  default     = "runway"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.name))
    error_message = "name must be 2-20 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environment" {
  description = "Environment name, e.g. `staging` or `production`. Part of every resource name and tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,19}$", var.environment))
    error_message = "environment must be 2-20 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "table_prefix" {
  description = "Prefix of every DynamoDB table name (the Lambda gets it as RUNWAY_DYNAMODB_TABLE_PREFIX). Null: `<name>-<environment>-`."
  type        = string
  default     = null

  validation {
    # DynamoDB table names are 3-255 characters of [a-zA-Z0-9_.-]; the longest
    # suffix is `registration_tokens` (19 characters).
    condition     = var.table_prefix == null || can(regex("^[A-Za-z0-9_.-]{1,200}$", var.table_prefix))
    error_message = "table_prefix must be 1-200 characters of letters, digits, '_', '.' and '-'."
  }
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default tags)."
  type        = map(string)
  default     = {}
}

# --- DynamoDB -----------------------------------------------------------------------

variable "billing_mode" {
  description = "DynamoDB capacity mode: PAY_PER_REQUEST (on demand: no capacity planning, pay per request) or PROVISIONED (capacity units with auto scaling: cheaper for steady, predictable load)."
  type        = string
  default     = "PAY_PER_REQUEST"

  validation {
    condition     = contains(["PAY_PER_REQUEST", "PROVISIONED"], var.billing_mode)
    error_message = "billing_mode must be PAY_PER_REQUEST or PROVISIONED."
  }
}

variable "default_capacity" {
  description = "PROVISIONED only: auto-scaling bounds (capacity units) of every table and GSI without an entry in capacity_overrides. The minimum is also the capacity Terraform sets."
  type = object({
    read_min  = number
    read_max  = number
    write_min = number
    write_max = number
  })
  default = {
    read_min  = 5
    read_max  = 200
    write_min = 5
    write_max = 200
  }

  validation {
    condition = (
      var.default_capacity.read_min >= 1 && var.default_capacity.write_min >= 1 &&
      var.default_capacity.read_max >= var.default_capacity.read_min &&
      var.default_capacity.write_max >= var.default_capacity.write_min
    )
    error_message = "default_capacity minimums must be at least 1 and each maximum at least its minimum."
  }
}

variable "capacity_overrides" {
  description = "PROVISIONED only: auto-scaling bounds per table (`sessions`) or GSI (`jobs/by_status`), overriding default_capacity."
  type = map(object({
    read_min  = number
    read_max  = number
    write_min = number
    write_max = number
  }))
  default = {}

  validation {
    condition = alltrue([
      for c in values(var.capacity_overrides) :
      c.read_min >= 1 && c.write_min >= 1 && c.read_max >= c.read_min && c.write_max >= c.write_min
    ])
    error_message = "capacity_overrides minimums must be at least 1 and each maximum at least its minimum."
  }
}

variable "autoscaling_target_utilization" {
  description = "PROVISIONED only: the consumed/provisioned percentage auto scaling aims for. Lower absorbs bursts better and costs more."
  type        = number
  default     = 70

  validation {
    # Application Auto Scaling accepts 20-90 for DynamoDB target tracking.
    condition     = var.autoscaling_target_utilization >= 20 && var.autoscaling_target_utilization <= 90
    error_message = "autoscaling_target_utilization must be between 20 and 90."
  }
}

variable "point_in_time_recovery" {
  description = "Continuous backups with restore to any second of the last 35 days. On unless there is a reason."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse DeleteTable on every table (a `terraform destroy` fails until this is turned off). On in production."
  type        = bool
  default     = false
}

# --- Job logs (S3) ----------------------------------------------------------------------

variable "log_bucket_name" {
  description = "Name of the S3 bucket for job logs (the Lambda gets it as RUNWAY_LOG_BUCKET). Null: `<name>-<environment>-logs-<account id>`."
  type        = string
  default     = null

  validation {
    condition     = var.log_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.log_bucket_name))
    error_message = "log_bucket_name must be 3-63 characters of lower-case letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

# Not `log_retention_days`: that one is the CloudWatch retention of the function's
# and the API's own logs (a fixed list of values, a year in production), while job
# logs are build output with a lifetime of their own.
variable "job_log_retention_days" {
  description = "Days after which a job log's objects expire from the log bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.job_log_retention_days >= 1 && var.job_log_retention_days <= 3650 && floor(var.job_log_retention_days) == var.job_log_retention_days
    error_message = "job_log_retention_days must be a whole number between 1 and 3650."
  }
}

variable "job_log_noncurrent_days" {
  description = "Days an overwritten or deleted log object stays recoverable (the bucket is versioned) before it expires."
  type        = number
  default     = 7

  validation {
    condition     = var.job_log_noncurrent_days >= 1 && var.job_log_noncurrent_days <= 365 && floor(var.job_log_noncurrent_days) == var.job_log_noncurrent_days
    error_message = "job_log_noncurrent_days must be a whole number between 1 and 365."
  }
}

# --- Encryption ------------------------------------------------------------------------

variable "kms_key_arn" {
  description = "ARN of an existing customer-managed KMS key for the tables, the job log bucket, log groups and alarm topic. Null: the module creates one (with rotation)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[0-9a-f-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "kms_deletion_window_days" {
  description = "Days a created KMS key waits between scheduled deletion and deletion (the window to notice a mistake)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# --- Lambda --------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path of bootstrap.zip from `cargo lambda build --release --arm64 --output-format zip` (`make lambda`), relative to the directory terraform runs in."
  type        = string

  validation {
    condition     = endswith(var.lambda_zip_path, ".zip")
    error_message = "lambda_zip_path must name a .zip file."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of the function. arm64 (Graviton) costs about 20% less per GB-second than x86_64; the zip must be built for the same one."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_memory_mb" {
  description = "Function memory in MB (CPU is allocated in proportion). 128 is enough for Runway: see the module's lambda.tf."
  type        = number
  default     = 128

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240 && floor(var.lambda_memory_mb) == var.lambda_memory_mb
    error_message = "lambda_memory_mb must be a whole number between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Function timeout. API Gateway HTTP APIs give up after 30 s, so a longer timeout would only bill work nobody waits for."
  type        = number
  default     = 29

  validation {
    condition     = var.lambda_timeout_seconds >= 1 && var.lambda_timeout_seconds <= 30
    error_message = "lambda_timeout_seconds must be between 1 and 30 (the HTTP API integration limit)."
  }
}

variable "reserved_concurrency" {
  description = "Concurrent executions reserved for (and capped at) this function; -1 for none (the account's unreserved pool). Caps the DynamoDB load and the bill a traffic spike can cause."
  type        = number
  default     = -1

  validation {
    # 0 would throttle every request: never what anyone wants from this variable.
    condition     = var.reserved_concurrency == -1 || (var.reserved_concurrency >= 1 && floor(var.reserved_concurrency) == var.reserved_concurrency)
    error_message = "reserved_concurrency must be -1 (unreserved) or a whole number of at least 1."
  }
}

variable "log_level" {
  description = "RUNWAY_LOG: a tracing filter such as `info` or `info,runway_api=debug`."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_=,:.-]+$", var.log_level))
    error_message = "log_level must be a tracing filter such as `info` or `info,runway_api=debug`."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's logs and the API access logs, in days (one of the values CloudWatch Logs accepts)."
  type        = number
  default     = 365

  validation {
    condition = contains(
      [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653],
      var.log_retention_days
    )
    error_message = "log_retention_days must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "session_ttl_seconds" {
  description = "RUNWAY_SESSION_TTL_SECONDS: absolute session lifetime."
  type        = number
  default     = 604800

  validation {
    condition     = var.session_ttl_seconds >= 60 && var.session_ttl_seconds <= 31536000
    error_message = "session_ttl_seconds must be between 60 and 31536000."
  }
}

variable "session_idle_timeout_seconds" {
  description = "RUNWAY_SESSION_IDLE_TIMEOUT_SECONDS: a session unused this long lapses."
  type        = number
  default     = 86400

  validation {
    condition     = var.session_idle_timeout_seconds >= 60 && var.session_idle_timeout_seconds <= 31536000
    error_message = "session_idle_timeout_seconds must be between 60 and 31536000."
  }
}

# --- Sign-in through OpenID Connect ---------------------------------------------------

variable "public_url" {
  description = "RUNWAY_PUBLIC_URL: the API's external URL (e.g. https://ci.example.com, or the API Gateway URL). Required with oidc_issuer_url: the OIDC callback is {public_url}/api/v1/auth/oidc/callback. Empty: unset."
  type        = string
  default     = ""

  validation {
    condition     = var.public_url == "" || can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.public_url))
    error_message = "public_url must be an https:// URL without query or fragment, or empty."
  }
}

variable "oidc_issuer_url" {
  description = "RUNWAY_OIDC_ISSUER_URL: the OpenID Connect issuer (exactly its `iss`). Empty: password sign-in only."
  type        = string
  default     = ""
}

variable "oidc_client_id" {
  description = "RUNWAY_OIDC_CLIENT_ID: this deployment's client id at the issuer."
  type        = string
  default     = ""
}

variable "oidc_client_secret" {
  description = "RUNWAY_OIDC_CLIENT_SECRET: the client secret. Sensitive: Terraform keeps it out of plans and output, but it is in the state (see DEPLOYMENT.md, Sign in with OpenID Connect). Empty: a public client."
  type        = string
  default     = ""
  sensitive   = true
}

variable "oidc_allowed_email_domains" {
  description = "RUNWAY_OIDC_ALLOWED_EMAIL_DOMAINS: email domains let in (verified emails only). Empty: all."
  type        = list(string)
  default     = []
}

variable "oidc_admin_emails" {
  description = "RUNWAY_OIDC_ADMIN_EMAILS: verified emails that become admins at their first sign-in."
  type        = list(string)
  default     = []
}

variable "oidc_admin_group" {
  description = "RUNWAY_OIDC_ADMIN_GROUP: a `groups` claim value that makes an admin at the first sign-in. Empty: none."
  type        = string
  default     = ""
}

# --- API Gateway -----------------------------------------------------------------------

variable "cors_origins" {
  description = "Browser origins allowed to call the API (CORS). Empty: no CORS at all (same-origin use, CLI and agents need none). Passed to both API Gateway and RUNWAY_CORS_ORIGINS so they agree."
  type        = list(string)
  default     = []

  validation {
    # No `*`: a wildcard would let any site drive a signed-in browser's API calls.
    condition = alltrue([
      for o in var.cors_origins : can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?$", o)) || can(regex("^http://(localhost|127\\.0\\.0\\.1)(:[0-9]+)?$", o))
    ])
    error_message = "cors_origins must be https:// origins (scheme, host, optional port, no path), or http://localhost / http://127.0.0.1 for development; `*` is not allowed."
  }
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the API stage accepts before answering 429."
  type        = number
  default     = 100

  validation {
    condition     = var.api_throttling_rate_limit >= 1 && var.api_throttling_rate_limit <= 10000
    error_message = "api_throttling_rate_limit must be between 1 and 10000."
  }
}

variable "api_throttling_burst_limit" {
  description = "Requests the API stage accepts in a burst above the rate limit."
  type        = number
  default     = 200

  validation {
    condition     = var.api_throttling_burst_limit >= 1 && var.api_throttling_burst_limit <= 5000
    error_message = "api_throttling_burst_limit must be between 1 and 5000."
  }
}

# --- Deployments and alarms --------------------------------------------------------------

variable "deployment_config_name" {
  description = "How CodeDeploy shifts the `live` alias to a new version. Canary: 10% for 5 minutes, then all, rolled back automatically if an alarm fires meanwhile."
  type        = string
  default     = "CodeDeployDefault.LambdaCanary10Percent5Minutes"

  validation {
    condition = contains([
      "CodeDeployDefault.LambdaAllAtOnce",
      "CodeDeployDefault.LambdaCanary10Percent5Minutes",
      "CodeDeployDefault.LambdaCanary10Percent10Minutes",
      "CodeDeployDefault.LambdaCanary10Percent15Minutes",
      "CodeDeployDefault.LambdaCanary10Percent30Minutes",
      "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
      "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes",
      "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes",
      "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes",
    ], var.deployment_config_name)
    error_message = "deployment_config_name must be one of CodeDeploy's predefined Lambda configurations."
  }
}

variable "alarm_api_5xx_percent" {
  description = "The API 5xx alarm fires when more than this percentage of requests in a minute answer 5xx (over at least 20 requests)."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_api_5xx_percent > 0 && var.alarm_api_5xx_percent <= 100
    error_message = "alarm_api_5xx_percent must be above 0 and at most 100."
  }
}

variable "alarm_api_p99_latency_ms" {
  description = "The latency alarm fires when the API's p99 latency stays above this many milliseconds for 5 minutes."
  type        = number
  default     = 1000

  validation {
    condition     = var.alarm_api_p99_latency_ms >= 10 && var.alarm_api_p99_latency_ms <= 30000
    error_message = "alarm_api_p99_latency_ms must be between 10 and 30000."
  }
}

variable "alarm_subscriptions" {
  description = "Where alarm notifications go: SNS subscriptions such as { protocol = \"email\", endpoint = \"oncall@example.com\" } (email needs a click to confirm)."
  type = list(object({
    protocol = string
    endpoint = string
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.alarm_subscriptions : contains(["email", "email-json", "https", "sqs", "lambda", "sms"], s.protocol)])
    error_message = "alarm_subscriptions protocols must be email, email-json, https, sqs, lambda or sms."
  }
}
