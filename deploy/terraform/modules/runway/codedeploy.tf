# Gradual deployments. Terraform publishes a new version on every change
# (`publish = true`) but leaves the `live` alias alone; the deploy workflow then
# asks CodeDeploy to move `live` from the current version to the new one with
# var.deployment_config_name: by default 10% of requests for 5 minutes, then all.
# If any rollback alarm (alarms.tf) fires meanwhile, CodeDeploy puts the alias
# back on the previous version by itself and the workflow fails.

resource "aws_codedeploy_app" "this" {
  name             = local.name
  compute_platform = "Lambda"
  tags             = local.tags
}

data "aws_iam_policy_document" "assume_codedeploy" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codedeploy.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "codedeploy" {
  name               = "${local.name}-codedeploy"
  description        = "Lets CodeDeploy shift the ${local.function_name} live alias"
  assume_role_policy = data.aws_iam_policy_document.assume_codedeploy.json
  tags               = local.tags
}

# What CodeDeploy needs for a Lambda deployment without lifecycle hooks: read and
# move this function's alias, and read the rollback alarms' state. Narrower than
# the AWS managed AWSCodeDeployRoleForLambdaLimited, which covers every function.
data "aws_iam_policy_document" "codedeploy" {
  statement {
    sid       = "ShiftTheLiveAlias"
    actions   = ["lambda:GetAlias", "lambda:UpdateAlias", "lambda:GetProvisionedConcurrencyConfig"]
    resources = [aws_lambda_function.this.arn, "${aws_lambda_function.this.arn}:*"]
  }

  statement {
    sid       = "ReadRollbackAlarms"
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [for alarm in local.rollback_alarms : alarm.arn]
  }
}

resource "aws_iam_role_policy" "codedeploy" {
  name   = "shift-live-alias"
  role   = aws_iam_role.codedeploy.id
  policy = data.aws_iam_policy_document.codedeploy.json
}

resource "aws_codedeploy_deployment_group" "live" {
  app_name               = aws_codedeploy_app.this.name
  deployment_group_name  = "live"
  service_role_arn       = aws_iam_role.codedeploy.arn
  deployment_config_name = var.deployment_config_name

  deployment_style {
    deployment_type   = "BLUE_GREEN"
    deployment_option = "WITH_TRAFFIC_CONTROL"
  }

  alarm_configuration {
    enabled = true
    alarms  = [for alarm in local.rollback_alarms : alarm.alarm_name]
  }

  auto_rollback_configuration {
    enabled = true
    events  = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"]
  }

  tags = local.tags
}
