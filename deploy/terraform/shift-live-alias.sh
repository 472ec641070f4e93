#!/usr/bin/env bash
# shift-live-alias.sh ENV_DIR — move the `live` alias to the newest published
# version with CodeDeploy, and wait for the result.
#
#   deploy/terraform/shift-live-alias.sh deploy/terraform/environments/staging
#
# Run after `terraform apply` in ENV_DIR (it reads that state's outputs), with AWS
# credentials for the environment. The deployment group's configuration decides
# the pace (by default 10% of requests for 5 minutes, then all) and its alarms
# decide whether CodeDeploy rolls back. Exits 0 when `live` serves the new version
# (or already did), non-zero when the deployment failed or was rolled back.
#
# To roll back by hand, see DEPLOYMENT.md ("Rollback").

set -euo pipefail

dir="${1:?usage: shift-live-alias.sh ENV_DIR}"
out() { terraform -chdir="$dir" output -raw "$1"; }

function_name="$(out function_name)"
alias_name="$(out alias_name)"
target="$(out function_version)"
app="$(out codedeploy_app)"
group="$(out codedeploy_deployment_group)"

current="$(aws lambda get-alias --function-name "$function_name" --name "$alias_name" \
  --query FunctionVersion --output text)"

if [[ "$current" == "$target" ]]; then
  echo "live already serves version $target of $function_name; nothing to shift"
  exit 0
fi
echo "shifting $function_name:$alias_name from version $current to $target ($app/$group)"

# The AppSpec CodeDeploy needs for a Lambda deployment, built with a JSON encoder
# rather than by string pasting.
revision="$(python3 - "$function_name" "$alias_name" "$current" "$target" <<'PY'
import json, sys
name, alias, current, target = sys.argv[1:]
appspec = {
    "version": 0.0,
    "Resources": [{
        "runway": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Name": name, "Alias": alias, "CurrentVersion": current, "TargetVersion": target},
        }
    }],
}
print(json.dumps({"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}}))
PY
)"

deployment="$(aws deploy create-deployment \
  --application-name "$app" \
  --deployment-group-name "$group" \
  --description "live: $current -> $target" \
  --revision "$revision" \
  --query deploymentId --output text)"
echo "CodeDeploy deployment $deployment started; waiting (a canary takes several minutes)"

if aws deploy wait deployment-successful --deployment-id "$deployment"; then
  echo "live now serves version $target"
  exit 0
fi

# The waiter fails on a failed, stopped or rolled-back deployment (or after 30 min).
aws deploy get-deployment --deployment-id "$deployment" \
  --query 'deploymentInfo.{status:status,error:errorInformation,rollback:rollbackInfo}' --output json >&2 || true
echo "deployment $deployment did not succeed (status above); on failure or an alarm CodeDeploy returns live to version $current" >&2
exit 1
