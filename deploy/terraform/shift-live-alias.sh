#!/usr/bin/env bash
# shift-live-alias.sh ENV_DIR — move the `live` alias to the newest published
# version with CodeDeploy, and wait for the result.
#
#   deploy/terraform/shift-live-alias.sh deploy/terraform/environments/staging
#
# Run after `terraform apply` in ENV_DIR (it reads that state's outputs), with AWS
# credentials for the environment (lambda:InvokeFunction and lambda:GetAlias on the
# function, codedeploy:CreateDeployment and GetDeployment).
#
# 1. Pre-traffic check: the new version is invoked directly (`--qualifier N`, not
#    the alias, so no client request reaches it) with the API Gateway health event
#    crates/runway-server/tests/fixtures/apigw-v2-health.json, then with the same
#    event for /ready. Both must answer statusCode 200: a version whose cold start
#    fails, or that cannot read its tables, never gets traffic. This is the real
#    guard at low traffic, where the 5xx-rate alarm (it needs 20 requests a minute)
#    cannot fire during the canary.
# 2. The shift: the deployment group's configuration decides the pace (by default
#    10% of requests for 5 minutes, then all) and its alarms decide whether
#    CodeDeploy rolls back.
#
# Exits 0 when `live` serves the new version (or already did), non-zero when the
# pre-traffic check failed (live untouched) or the deployment failed or was rolled
# back. To roll back by hand, see DEPLOYMENT.md ("Rollback").

set -euo pipefail

dir="${1:?usage: shift-live-alias.sh ENV_DIR}"
out() { terraform -chdir="$dir" output -raw "$1"; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HEALTH_EVENT="$ROOT/crates/runway-server/tests/fixtures/apigw-v2-health.json"

function_name="$(out function_name)"
alias_name="$(out alias_name)"
target="$(out function_version)"
app="$(out codedeploy_app)"
group="$(out codedeploy_deployment_group)"

current="$(aws lambda get-alias --function-name "$function_name" --name "$alias_name" \
  --query FunctionVersion --output text)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# invoke_version PATH: invoke version $target with the health event, its path
# replaced by PATH, and check for statusCode 200 and no function error.
invoke_version() {
  local path=$1 name
  name="$(tr -c 'a-z0-9\n' '_' <<<"${path#/}")"
  python3 - "$HEALTH_EVENT" "$path" >"$work/$name-event.json" <<'PY'
import json, sys
event = json.load(open(sys.argv[1]))
event["rawPath"] = event["requestContext"]["http"]["path"] = sys.argv[2]
print(json.dumps(event))
PY
  if ! aws lambda invoke --function-name "$function_name" --qualifier "$target" \
    --payload "fileb://$work/$name-event.json" --output json \
    "$work/$name-response.json" >"$work/$name-meta.json"; then
    echo "pre-traffic check: invoking version $target with GET $path failed (above); live stays on version $current" >&2
    return 1
  fi
  python3 - "$work/$name-meta.json" "$work/$name-response.json" "$path" "$target" <<'PY'
import json, sys
meta_path, response_path, path, version = sys.argv[1:]
meta = json.load(open(meta_path))
raw = open(response_path).read()
if meta.get("FunctionError"):
    sys.exit(f"pre-traffic check: version {version} failed GET {path} ({meta['FunctionError']}): {raw}")
try:
    status = json.loads(raw).get("statusCode")
except (ValueError, AttributeError):
    status = None
if status != 200:
    sys.exit(f"pre-traffic check: version {version} answered GET {path} with statusCode {status}, not 200: {raw}")
print(f"pre-traffic check: version {version} answers GET {path} with 200")
PY
}

# Before any traffic, and also when live already serves $target (the first apply
# creates `live` on version 1 directly): a broken version fails the run here.
if ! invoke_version /health || ! invoke_version /ready; then
  echo "pre-traffic check failed: $function_name version $target gets no traffic; live stays on version $current" >&2
  exit 1
fi

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
