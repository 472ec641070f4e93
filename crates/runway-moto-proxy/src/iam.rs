//! The function's IAM policy, enforced on every store test.
//!
//! `deploy/terraform/modules/runway/iam.tf` grants the Lambda function, table by
//! table, exactly the DynamoDB actions its code calls (`local.table_actions` for a
//! table's items, `local.index_actions` for its indexes). Nothing would tell us, short
//! of a deployment, that a change to the store calls an action the policy does not
//! grant. So the relay plays IAM: it works out, from
//! each request's `X-Amz-Target` and body, every (action, table or index) the request
//! needs, the way IAM authorizes it (a `TransactWriteItems` needs the `PutItem`,
//! `UpdateItem`, `DeleteItem` or `ConditionCheckItem` of each of its items; a
//! `BatchGetItem` needs `BatchGetItem` on each table it reads), and refuses the request
//! with DynamoDB's `AccessDeniedException` if `iam.tf` does not grant one of them. A
//! store test or end-to-end story that makes such a call fails, naming the action
//! and table.
//!
//! Table management (`CreateTable`, `DescribeTable`, `UpdateTimeToLive`, …) is exempt:
//! only `runway dynamodb create-tables` and the fixtures call it, from an operator's
//! credentials; the function's role has none of it, and Terraform owns the tables.
//!
//! With `RUNWAY_TEST_IAM_RECORD=FILE`, every needed (action, table) is also
//! appended to FILE, one per line: `sort -u FILE` after a full run lists what the code
//! calls, to compare with `iam.tf` when the store changes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::OnceLock;

use hcl::Body;
use serde_json::Value;

/// Actions only table management uses, never the function.
const MANAGEMENT: &[&str] = &[
    "CreateTable",
    "DeleteTable",
    "DescribeTable",
    "DescribeTimeToLive",
    "ListTables",
    "UpdateTimeToLive",
];

/// What one request needs: (action, table suffix, whether on an index).
pub(crate) type Need = (String, String, bool);

/// The grants of `iam.tf`: table suffix → actions on its items, and on its indexes.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    pub(crate) items: BTreeMap<String, BTreeSet<String>>,
    pub(crate) indexes: BTreeMap<String, BTreeSet<String>>,
}

impl Grants {
    /// Whether `need` is granted.
    pub(crate) fn allow(&self, (action, table, index): &Need) -> bool {
        let map = if *index { &self.indexes } else { &self.items };
        map.get(table)
            .is_some_and(|actions| actions.contains(action))
    }
}

/// The grants, parsed once from `iam.tf`.
pub(crate) fn grants() -> &'static Grants {
    static GRANTS: OnceLock<Grants> = OnceLock::new();
    GRANTS.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/terraform/modules/runway/iam.tf");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let body: Body = hcl::from_str(&text).expect("iam.tf parses");
        Grants {
            items: action_map(&body, "table_actions"),
            indexes: action_map(&body, "index_actions"),
        }
    })
}

/// `local.NAME`, a map of table suffix → list of action names (without `dynamodb:`).
fn action_map(body: &Body, name: &str) -> BTreeMap<String, BTreeSet<String>> {
    let expr = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| b.body().attributes().find(|a| a.key() == name))
        .unwrap_or_else(|| panic!("iam.tf has no local.{name}"))
        .expr();
    let hcl::Value::Object(map) = hcl::Value::from(expr.clone()) else {
        panic!("local.{name} is not a map");
    };
    map.into_iter()
        .map(|(table, actions)| {
            let hcl::Value::Array(actions) = actions else {
                panic!("local.{name}.{table} is not a list");
            };
            let actions = actions
                .into_iter()
                .map(|a| match a {
                    hcl::Value::String(a) => a,
                    other => panic!("local.{name}.{table} has a non-string {other:?}"),
                })
                .collect();
            (table, actions)
        })
        .collect()
}

/// Checks a parse of `iam.tf` never yields an empty policy (a map the parser
/// misread would make every request "not granted", which the tests would show,
/// but an empty one must not pass silently either).
#[cfg(test)]
fn assert_nonempty(grants: &Grants) {
    assert!(
        !grants.items.is_empty() && !grants.indexes.is_empty(),
        "iam.tf's table_actions and index_actions must not be empty"
    );
}

/// The table suffix of a full table name `PREFIX_SUFFIX` (test prefixes are
/// `t<ulid>_`, without another `_`).
fn suffix(table: &str) -> String {
    table
        .split_once('_')
        .map_or(table, |(_, suffix)| suffix)
        .to_owned()
}

fn table_of(v: &Value) -> Option<String> {
    v.get("TableName").and_then(Value::as_str).map(suffix)
}

/// What a request (its `X-Amz-Target` and JSON body) needs from IAM; empty for
/// table management.
pub(crate) fn needs(target: &str, body: &[u8]) -> Vec<Need> {
    let action = target.rsplit('.').next().unwrap_or_default();
    if action.is_empty() || MANAGEMENT.contains(&action) {
        return Vec::new();
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return vec![(action.to_owned(), "<unparsed body>".to_owned(), false)];
    };
    let mut needs = Vec::new();
    match action {
        "TransactWriteItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                for (kind, action) in [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                ] {
                    if let Some(table) = item.get(kind).and_then(table_of) {
                        needs.push((action.to_owned(), table, false));
                    }
                }
            }
        }
        "TransactGetItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                if let Some(table) = item.get("Get").and_then(table_of) {
                    needs.push(("GetItem".to_owned(), table, false));
                }
            }
        }
        "BatchGetItem" | "BatchWriteItem" => {
            for table in body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(t, _)| t)
            {
                needs.push((action.to_owned(), suffix(table), false));
            }
        }
        _ => {
            let table = table_of(&body).unwrap_or_else(|| "<no table>".to_owned());
            let index = body.get("IndexName").is_some();
            needs.push((action.to_owned(), table, index));
        }
    }
    needs
}

/// The first need the policy does not grant, if any; records every need when
/// `RUNWAY_TEST_IAM_RECORD` is set.
pub(crate) fn refused(target: &str, body: &[u8]) -> Option<Need> {
    let needs = needs(target, body);
    if let Some(path) = std::env::var_os("RUNWAY_TEST_IAM_RECORD")
        && let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        let lines: String = needs
            .iter()
            .map(|(action, table, index)| {
                let on = if *index { "index" } else { "table" };
                format!("{table} {on} {action}\n")
            })
            .collect();
        // One write per request, so concurrent tests' lines never interleave.
        let _ = file.write_all(lines.as_bytes());
    }
    let grants = grants();
    needs.into_iter().find(|need| !grants.allow(need))
}

/// A refused need in words: `dynamodb:ACTION on table `T`` (or an index of it).
pub(crate) fn describe((action, table, index): &Need) -> String {
    let on = if *index {
        format!("an index of `{table}`")
    } else {
        format!("table `{table}`")
    };
    format!("dynamodb:{action} on {on}")
}

/// The `AccessDeniedException` response for a refused need.
pub(crate) fn denial(need: &Need) -> String {
    let body = format!(
        r#"{{"__type":"com.amazon.coral.service#AccessDeniedException","message":"the test proxy (playing IAM, runway-moto-proxy's iam.rs): deploy/terraform/modules/runway/iam.tf does not grant {}"}}"#,
        describe(need)
    );
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.0\r\n\
         x-amzn-ErrorType: AccessDeniedException\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_parses_into_grants_for_items_and_indexes() {
        let grants = grants();
        assert_nonempty(grants);
        assert!(grants.allow(&("PutItem".into(), "audit".into(), false)));
        assert!(!grants.allow(&("UpdateItem".into(), "audit".into(), false)));
        assert!(!grants.allow(&("DeleteItem".into(), "audit".into(), false)));
        assert!(!grants.allow(&("Scan".into(), "jobs".into(), false)));
    }

    #[test]
    fn a_transaction_needs_the_action_of_each_of_its_items_on_each_table() {
        let body = br#"{"TransactItems":[
            {"Update":{"TableName":"t01_jobs","Key":{}}},
            {"Put":{"TableName":"t01_audit","Item":{}}},
            {"ConditionCheck":{"TableName":"t01_registration_tokens","Key":{}}}]}"#;
        assert_eq!(
            needs("DynamoDB_20120810.TransactWriteItems", body),
            vec![
                ("UpdateItem".to_owned(), "jobs".to_owned(), false),
                ("PutItem".to_owned(), "audit".to_owned(), false),
                (
                    "ConditionCheckItem".to_owned(),
                    "registration_tokens".to_owned(),
                    false
                ),
            ]
        );
        assert_eq!(
            needs(
                "DynamoDB_20120810.Query",
                br#"{"TableName":"t01_jobs","IndexName":"claimable"}"#
            ),
            vec![("Query".to_owned(), "jobs".to_owned(), true)]
        );
        assert!(
            needs(
                "DynamoDB_20120810.CreateTable",
                br#"{"TableName":"t01_jobs"}"#
            )
            .is_empty()
        );
    }
}
