variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
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
