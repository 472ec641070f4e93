//! The Terraform tables are the code's tables.
//!
//! `deploy/terraform/modules/runway/dynamodb.tf` declares every table in one
//! `locals { tables = { … } }` map and builds them all with one
//! `aws_dynamodb_table` resource (`for_each = local.tables`). These tests parse the
//! `.tf` files with `hcl-rs` and compare that map with [`schema()`], in both
//! directions: the same tables, hash and range keys, key attribute types, GSIs
//! (name, keys, projection) and TTL attribute, and nothing extra. They also check
//! that the resource really is built from that map and that the function gets the
//! prefix the tables are named with, so the comparison cannot pass vacuously.
//!
//! For the job logs (`logs.tf`): the function gets the bucket, the prefix IAM is
//! scoped to is the one the code defaults to, the function may only put, get and
//! list under it (`iam.tf`); the DynamoDB grants are per table, from two maps that
//! name only the code's tables (the tests' relay in front of moto, the crate
//! `runway-moto-proxy`, plays that policy),
//! and the bucket is private, encrypted with KMS, and expires objects after
//! `var.job_log_retention_days` (90 by default).
//!
//! No terraform binary and no AWS: `cargo test -p runway-store-dynamodb --test terraform`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, Value};
use runway_store_dynamodb::{
    AttributeKind, IndexSpec, KeyAttribute, Projection, TableSpec, schema,
};

fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/terraform/modules/runway")
}

fn parse(path: &Path) -> Body {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hcl::parse(&text).unwrap_or_else(|e| panic!("{} is not valid HCL: {e}", path.display()))
}

/// Every `.tf` file under `dir`, recursively, sorted.
fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a terraform directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                // Provider caches of a local `terraform init` are not ours.
                if path.file_name().is_some_and(|n| n != ".terraform") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "tf") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(hcl::Attribute::expr)
}

/// An expression as Terraform source would show it, e.g. `${local.tables}`.
fn text(expr: &Expression) -> String {
    match Value::from(expr.clone()) {
        Value::String(s) => s,
        other => panic!("expected a string-like expression, got {other:?}"),
    }
}

fn dynamodb_tf() -> Body {
    parse(&module_dir().join("dynamodb.tf"))
}

/// `local.tables`, as a plain value.
fn terraform_tables() -> BTreeMap<String, Value> {
    let body = dynamodb_tf();
    let tables = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attribute(b.body(), "tables"))
        .expect("dynamodb.tf has `locals { tables = { … } }`");
    let Value::Object(tables) = Value::from(tables.clone()) else {
        panic!("local.tables is not an object");
    };
    tables.into_iter().collect()
}

fn table_resource(body: &Body) -> &Block {
    body.blocks()
        .find(|b| {
            b.identifier() == "resource"
                && b.labels().first().map(hcl::BlockLabel::as_str) == Some("aws_dynamodb_table")
        })
        .expect("dynamodb.tf declares an aws_dynamodb_table resource")
}

fn field<'a>(object: &'a Value, key: &str, context: &str) -> &'a Value {
    object
        .as_object()
        .unwrap_or_else(|| panic!("{context} is not an object"))
        .get(key)
        .unwrap_or_else(|| panic!("{context} has no `{key}`"))
}

fn string_field(object: &Value, key: &str, context: &str) -> Option<String> {
    match field(object, key, context) {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("{context}.{key} is neither a string nor null: {other:?}"),
    }
}

fn kind(kind: AttributeKind) -> &'static str {
    match kind {
        AttributeKind::String => "S",
        AttributeKind::Number => "N",
    }
}

fn projection(projection: &Projection) -> &'static str {
    match projection {
        Projection::KeysOnly => "KEYS_ONLY",
        Projection::All => "ALL",
        Projection::Include(_) => "INCLUDE",
    }
}

fn terraform_table<'a>(tables: &'a BTreeMap<String, Value>, suffix: &str) -> &'a Value {
    tables.get(suffix).unwrap_or_else(|| {
        panic!("schema() has the table `{suffix}` but local.tables in dynamodb.tf does not")
    })
}

/// Every key attribute of a table spec and its indexes with its type, once each.
fn key_attributes(spec: &TableSpec) -> BTreeMap<String, String> {
    let mut keys: Vec<&KeyAttribute> = vec![&spec.partition_key];
    keys.extend(&spec.sort_key);
    for index in &spec.indexes {
        keys.push(&index.partition_key);
        keys.extend(&index.sort_key);
    }
    keys.into_iter()
        .map(|k| (k.name.to_owned(), kind(k.kind).to_owned()))
        .collect()
}

#[test]
fn every_table_in_the_schema_is_declared_in_terraform_with_the_same_keys() {
    let tables = terraform_tables();
    for spec in schema() {
        let table = terraform_table(&tables, spec.suffix);
        let context = format!("local.tables.{}", spec.suffix);
        assert_eq!(
            string_field(table, "hash_key", &context).as_deref(),
            Some(spec.partition_key.name),
            "{context}: hash key"
        );
        assert_eq!(
            string_field(table, "range_key", &context).as_deref(),
            spec.sort_key.as_ref().map(|k| k.name),
            "{context}: range key"
        );
    }
}

#[test]
fn attribute_definitions_are_exactly_the_key_attributes_with_their_types() {
    let tables = terraform_tables();
    for spec in schema() {
        let context = format!("local.tables.{}", spec.suffix);
        let declared: BTreeMap<String, String> = field(
            terraform_table(&tables, spec.suffix),
            "attributes",
            &context,
        )
        .as_object()
        .unwrap_or_else(|| panic!("{context}.attributes is not an object"))
        .iter()
        .map(|(name, kind)| {
            let kind = kind
                .as_str()
                .unwrap_or_else(|| panic!("{context}.attributes.{name} is not a string"));
            (name.clone(), kind.to_owned())
        })
        .collect();
        // DynamoDB rejects an attribute definition that is not a key, so this is
        // an equality, not a subset.
        assert_eq!(declared, key_attributes(&spec), "{context}: attributes");
    }
}

#[test]
fn every_gsi_matches_the_schema_in_name_keys_and_projection() {
    let tables = terraform_tables();
    for spec in schema() {
        let context = format!("local.tables.{}.indexes", spec.suffix);
        let declared = field(terraform_table(&tables, spec.suffix), "indexes", &context)
            .as_object()
            .unwrap_or_else(|| panic!("{context} is not an object"));
        let mut declared_names: Vec<&str> = declared.keys().map(String::as_str).collect();
        declared_names.sort_unstable();
        let mut expected_names: Vec<&str> = spec.indexes.iter().map(|i| i.name).collect();
        expected_names.sort_unstable();
        assert_eq!(declared_names, expected_names, "{context}: index names");

        for IndexSpec {
            name,
            partition_key,
            sort_key,
            projection: expected,
        } in &spec.indexes
        {
            let index = &declared[*name];
            let context = format!("{context}.{name}");
            assert_eq!(
                string_field(index, "hash_key", &context).as_deref(),
                Some(partition_key.name),
                "{context}: hash key"
            );
            assert_eq!(
                string_field(index, "range_key", &context).as_deref(),
                sort_key.as_ref().map(|k| k.name),
                "{context}: range key"
            );
            assert_eq!(
                string_field(index, "projection_type", &context).as_deref(),
                Some(projection(expected)),
                "{context}: projection"
            );
            if let Projection::Include(attributes) = expected {
                let declared: Vec<&str> = field(index, "non_key_attributes", &context)
                    .as_array()
                    .unwrap_or_else(|| panic!("{context}.non_key_attributes is not a list"))
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(declared, *attributes, "{context}: non-key attributes");
            }
        }
    }
}

#[test]
fn ttl_attributes_match_the_schema() {
    let tables = terraform_tables();
    for spec in schema() {
        let context = format!("local.tables.{}", spec.suffix);
        assert_eq!(
            string_field(
                terraform_table(&tables, spec.suffix),
                "ttl_attribute",
                &context
            )
            .as_deref(),
            spec.ttl_attribute,
            "{context}: TTL attribute"
        );
    }
}

#[test]
fn no_table_has_more_gsis_than_its_throttle_alarm_can_watch() {
    // alarms.tf watches Read and WriteThrottleEvents of the table and of each GSI in
    // one metric-math alarm, and CloudWatch allows at most 10 metrics per alarm.
    const ALARM_METRICS_MAX: usize = 10;
    for spec in schema() {
        let metrics = 2 + 2 * spec.indexes.len();
        assert!(
            metrics <= ALARM_METRICS_MAX,
            "{}: {} GSIs need {metrics} metrics in its throttle alarm, more than \
             CloudWatch's {ALARM_METRICS_MAX}; split the alarm in alarms.tf",
            spec.suffix,
            spec.indexes.len()
        );
    }
}

#[test]
fn terraform_declares_no_table_the_code_does_not_use() {
    let specs = schema();
    for suffix in terraform_tables().keys() {
        assert!(
            specs.iter().any(|s| s.suffix == suffix),
            "local.tables in dynamodb.tf declares `{suffix}`, which schema() does not have"
        );
    }
}

#[test]
fn the_only_dynamodb_table_resource_is_built_from_the_tables_local() {
    let terraform = module_dir().join("../..");
    let mut resources = Vec::new();
    for file in tf_files(&terraform) {
        for block in parse(&file).blocks() {
            let labels: Vec<&str> = block.labels().iter().map(hcl::BlockLabel::as_str).collect();
            if block.identifier() == "resource" && labels.first() == Some(&"aws_dynamodb_table") {
                resources.push(format!("{}: {}", file.display(), labels.join(".")));
            }
        }
    }
    assert_eq!(
        resources.len(),
        1,
        "expected one aws_dynamodb_table resource under deploy/terraform, found {resources:#?}"
    );

    let body = dynamodb_tf();
    let resource = table_resource(&body);
    let for_each = attribute(resource.body(), "for_each").expect("the table resource has for_each");
    assert_eq!(text(for_each), "${local.tables}");

    let name = attribute(resource.body(), "name").expect("the table resource has a name");
    assert_eq!(text(name), "${local.table_prefix}${each.key}");

    // Keys, attributes, GSIs and TTL come from the map, not from literals.
    for (key, source) in [
        ("hash_key", "${each.value.hash_key}"),
        ("range_key", "${each.value.range_key}"),
    ] {
        let expr = attribute(resource.body(), key).unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(text(expr), source, "{key}");
    }
    for (block, source) in [
        ("attribute", "${each.value.attributes}"),
        ("global_secondary_index", "${each.value.indexes}"),
    ] {
        let dynamic = resource
            .body()
            .blocks()
            .find(|b| {
                b.identifier() == "dynamic"
                    && b.labels().first().map(hcl::BlockLabel::as_str) == Some(block)
            })
            .unwrap_or_else(|| panic!("no dynamic \"{block}\" block"));
        let for_each = attribute(dynamic.body(), "for_each").expect("dynamic for_each");
        assert_eq!(text(for_each), source, "dynamic {block}");
    }
    let ttl = resource
        .body()
        .blocks()
        .find(|b| {
            b.identifier() == "dynamic"
                && b.labels().first().map(hcl::BlockLabel::as_str) == Some("ttl")
        })
        .expect("a dynamic \"ttl\" block");
    assert!(
        text(attribute(ttl.body(), "for_each").expect("ttl for_each"))
            .contains("each.value.ttl_attribute"),
        "the ttl block follows each.value.ttl_attribute"
    );
}

/// `local.NAME` of iam.tf: table suffix → actions.
fn iam_actions(body: &Body, name: &str) -> BTreeMap<String, Vec<String>> {
    let Value::Object(map) = Value::from(local(body, name).clone()) else {
        panic!("local.{name} is not a map");
    };
    map.into_iter()
        .map(|(table, actions)| {
            let Value::Array(actions) = actions else {
                panic!("local.{name}.{table} is not a list");
            };
            let mut actions: Vec<String> = actions
                .iter()
                .map(|a| a.as_str().expect("an action name").to_owned())
                .collect();
            actions.sort();
            (table, actions)
        })
        .collect()
}

#[test]
fn the_function_may_only_append_to_and_read_the_audit_log() {
    let body = parse(&module_dir().join("iam.tf"));
    let items = iam_actions(&body, "table_actions");
    assert_eq!(items["audit"], ["BatchGetItem", "PutItem"]);
}

#[test]
fn iam_grants_name_only_the_codes_tables_and_indexes_of_tables_that_have_them() {
    let body = parse(&module_dir().join("iam.tf"));
    let tables: BTreeMap<&str, &TableSpec> =
        schema().leak().iter().map(|t| (t.suffix, t)).collect();
    let items = iam_actions(&body, "table_actions");
    assert_eq!(
        items.keys().map(String::as_str).collect::<Vec<_>>(),
        tables.keys().copied().collect::<Vec<_>>(),
        "local.table_actions names every table of schema(), and no other"
    );
    for (table, actions) in iam_actions(&body, "index_actions") {
        let spec = tables.get(table.as_str()).unwrap_or_else(|| {
            panic!("local.index_actions names `{table}`, not a table of schema()")
        });
        assert!(
            !spec.indexes.is_empty(),
            "`{table}` has no index to grant Query on"
        );
        assert_eq!(actions, ["Query"], "indexes are only ever queried");
    }
    // No grant anywhere of the management actions Terraform owns.
    for actions in items.values() {
        for forbidden in [
            "CreateTable",
            "DeleteTable",
            "UpdateTable",
            "UpdateTimeToLive",
            "DescribeTable",
        ] {
            assert!(
                !actions.iter().any(|a| a == forbidden),
                "{forbidden} is granted"
            );
        }
    }
}

#[test]
fn the_functions_dynamodb_statements_are_built_from_the_per_table_grants_and_nothing_else() {
    let body = parse(&module_dir().join("iam.tf"));
    let policy = block(&body, "data", &["aws_iam_policy_document", "function"]);
    let dynamic: Vec<String> = policy
        .body()
        .blocks()
        .filter(|b| b.identifier() == "dynamic")
        .map(|b| text(attribute(b.body(), "for_each").expect("for_each")))
        .collect();
    assert_eq!(
        dynamic,
        ["${local.table_actions}", "${local.index_actions}"]
    );
    // No static statement grants a DynamoDB action: every one comes from the maps.
    for statement in policy
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
    {
        let actions = format!(
            "{:?}",
            Value::from(
                attribute(statement.body(), "actions")
                    .expect("actions")
                    .clone()
            )
        );
        assert!(
            !actions.contains("dynamodb:"),
            "a static statement grants DynamoDB actions: {actions}"
        );
    }
}

#[test]
fn the_function_reads_the_prefix_the_tables_are_named_with() {
    let body = parse(&module_dir().join("lambda.tf"));
    let function = body
        .blocks()
        .find(|b| {
            b.identifier() == "resource"
                && b.labels().first().map(hcl::BlockLabel::as_str) == Some("aws_lambda_function")
        })
        .expect("lambda.tf declares the function");
    let variables = function
        .body()
        .blocks()
        .find(|b| b.identifier() == "environment")
        .and_then(|b| attribute(b.body(), "variables"))
        .expect("the function has environment variables");
    let Value::Object(variables) = Value::from(variables.clone()) else {
        panic!("environment.variables is not an object");
    };
    assert_eq!(
        variables
            .get("RUNWAY_DYNAMODB_TABLE_PREFIX")
            .and_then(Value::as_str),
        Some("${local.table_prefix}")
    );
    assert_eq!(
        variables.get("RUNWAY_STORE").and_then(Value::as_str),
        Some("dynamodb")
    );
}

fn block<'a>(body: &'a Body, identifier: &str, labels: &[&str]) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier() == identifier
                && b.labels()
                    .iter()
                    .map(hcl::BlockLabel::as_str)
                    .eq(labels.iter().copied())
        })
        .unwrap_or_else(|| panic!("no {identifier} {labels:?}"))
}

fn local<'a>(body: &'a Body, name: &str) -> &'a Expression {
    body.blocks()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attribute(b.body(), name))
        .unwrap_or_else(|| panic!("no local.{name}"))
}

#[test]
fn the_function_gets_the_log_bucket_and_the_prefix_the_code_defaults_to() {
    let body = parse(&module_dir().join("lambda.tf"));
    let function = block(&body, "resource", &["aws_lambda_function", "this"]);
    let variables = function
        .body()
        .blocks()
        .find(|b| b.identifier() == "environment")
        .and_then(|b| attribute(b.body(), "variables"))
        .expect("the function has environment variables");
    let Value::Object(variables) = Value::from(variables.clone()) else {
        panic!("environment.variables is not an object");
    };
    assert_eq!(
        variables.get("RUNWAY_LOG_BUCKET").and_then(Value::as_str),
        Some("${aws_s3_bucket.logs.id}")
    );
    let logs = parse(&module_dir().join("logs.tf"));
    assert_eq!(
        text(local(&logs, "log_prefix")),
        runway_store_dynamodb::DynamoConfig::default().log_prefix,
        "IAM is scoped to the prefix the code writes under"
    );
}

#[test]
fn the_function_may_only_put_get_and_list_job_logs_under_their_prefix() {
    let body = parse(&module_dir().join("iam.tf"));
    let policy = block(&body, "data", &["aws_iam_policy_document", "function"]);
    let mut s3 = BTreeMap::new();
    for statement in policy
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
    {
        let Value::Array(actions) = Value::from(
            attribute(statement.body(), "actions")
                .expect("actions")
                .clone(),
        ) else {
            panic!("actions is not a list");
        };
        let resources = format!(
            "{:?}",
            Value::from(
                attribute(statement.body(), "resources")
                    .expect("resources")
                    .clone()
            )
        );
        let conditions: Vec<String> = statement
            .body()
            .blocks()
            .filter(|b| b.identifier() == "condition")
            .map(|c| {
                let variable = attribute(c.body(), "variable")
                    .map(text)
                    .unwrap_or_default();
                let values = format!(
                    "{:?}",
                    attribute(c.body(), "values").map(|v| Value::from(v.clone()))
                );
                format!("{variable} {values}")
            })
            .collect();
        for action in actions.iter().filter_map(Value::as_str) {
            if action.starts_with("s3:") {
                s3.insert(action.to_owned(), (resources.clone(), conditions.clone()));
            }
        }
    }
    let actions: Vec<&str> = s3.keys().map(String::as_str).collect();
    assert_eq!(actions, ["s3:GetObject", "s3:ListBucket", "s3:PutObject"]);
    for object_action in ["s3:GetObject", "s3:PutObject"] {
        let (resources, _) = &s3[object_action];
        assert!(
            resources.contains("${aws_s3_bucket.logs.arn}/${local.log_prefix}*"),
            "{object_action} only under the prefix: {resources}"
        );
    }
    let (resources, conditions) = &s3["s3:ListBucket"];
    assert!(
        resources.contains("${aws_s3_bucket.logs.arn}"),
        "{resources}"
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.starts_with("s3:prefix") && c.contains("${local.log_prefix}*")),
        "listing only under the prefix: {conditions:?}"
    );
}

#[test]
fn job_logs_are_encrypted_private_and_expire_after_their_retention() {
    let body = parse(&module_dir().join("logs.tf"));
    let access = block(
        &body,
        "resource",
        &["aws_s3_bucket_public_access_block", "logs"],
    );
    for switch in [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ] {
        assert_eq!(
            attribute(access.body(), switch).map(|e| Value::from(e.clone())),
            Some(Value::Bool(true)),
            "{switch}"
        );
    }
    let sse = block(
        &body,
        "resource",
        &["aws_s3_bucket_server_side_encryption_configuration", "logs"],
    );
    assert!(
        format!("{:?}", sse.body()).contains("aws:kms"),
        "SSE-KMS with the stack's key"
    );
    let lifecycle = block(
        &body,
        "resource",
        &["aws_s3_bucket_lifecycle_configuration", "logs"],
    );
    let expirations: Vec<String> = lifecycle
        .body()
        .blocks()
        .filter(|b| b.identifier() == "rule")
        .flat_map(|rule| {
            rule.body()
                .blocks()
                .filter(|b| b.identifier() == "expiration")
        })
        .filter_map(|e| attribute(e.body(), "days").map(text))
        .collect();
    assert_eq!(expirations, ["${var.job_log_retention_days}"]);

    let variables = parse(&module_dir().join("variables.tf"));
    let retention = block(&variables, "variable", &["job_log_retention_days"]);
    assert_eq!(
        attribute(retention.body(), "default").map(|e| Value::from(e.clone())),
        Some(Value::from(90))
    );
}

/// The resource block `kind` `name` of a parsed file.
fn resource<'a>(body: &'a Body, kind: &str, name: &str) -> &'a Block {
    body.blocks()
        .find(|b| {
            let labels: Vec<&str> = b.labels().iter().map(hcl::BlockLabel::as_str).collect();
            b.identifier() == "resource" && labels == [kind, name]
        })
        .unwrap_or_else(|| panic!("no resource {kind}.{name}"))
}

#[test]
fn an_eventbridge_schedule_invokes_the_live_alias_every_minute_for_the_reaper() {
    let body = parse(&module_dir().join("schedule.tf"));
    let rule = resource(&body, "aws_cloudwatch_event_rule", "reaper");
    assert_eq!(
        text(attribute(rule.body(), "schedule_expression").expect("a schedule")),
        "rate(1 minute)"
    );
    let target = resource(&body, "aws_cloudwatch_event_target", "reaper");
    assert_eq!(
        text(attribute(target.body(), "arn").expect("a target")),
        "${aws_lambda_alias.live.arn}",
        "the schedule must invoke what API Gateway invokes: the live alias"
    );
    assert_eq!(
        text(attribute(target.body(), "rule").expect("a rule")),
        "${aws_cloudwatch_event_rule.reaper.name}"
    );
    let permission = resource(&body, "aws_lambda_permission", "reaper");
    assert_eq!(
        text(attribute(permission.body(), "principal").expect("a principal")),
        "events.amazonaws.com"
    );
    assert_eq!(
        text(attribute(permission.body(), "source_arn").expect("scoped to the rule")),
        "${aws_cloudwatch_event_rule.reaper.arn}",
        "only this rule may invoke the function through this permission"
    );
    assert_eq!(
        text(attribute(permission.body(), "qualifier").expect("the alias")),
        "${aws_lambda_alias.live.name}"
    );
}
