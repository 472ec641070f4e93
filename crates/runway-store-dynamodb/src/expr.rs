//! Building update and condition expressions without hand-numbered placeholders.
//!
//! The lifecycle writes of `jobs.rs` and `dispatch.rs` each touch a different mix of
//! attributes (the status, one attempt's fields, the sparse index keys, the
//! secrets), decided at run time from the item they read. Writing those expressions
//! by hand means keeping `#names` and `:values` in step with every branch, and
//! DynamoDB rejects both an unused and a missing placeholder. [`Expr`] hands out a
//! placeholder for each name and value as it is used, so the maps always match the
//! text. Every attribute name is aliased, reserved or not (`status`, `number` and
//! `capacity` are reserved words; aliasing all of them means nobody has to know
//! which).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// One `UpdateExpression` and its `ConditionExpression`, with their placeholders.
#[derive(Debug, Default)]
pub(crate) struct Expr {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    delete: Vec<String>,
    conditions: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The placeholder of a top-level attribute name: `#status`. Names are the
    /// crate's own identifiers (letters, digits, `_`), so they make valid
    /// placeholders as they are.
    pub(crate) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .entry(placeholder.clone())
            .or_insert_with(|| attribute.to_owned());
        placeholder
    }

    /// The path of `field` in element `index` of the list `list`:
    /// `#attempts[2].#status`.
    pub(crate) fn element(&mut self, list: &str, index: usize, field: &str) -> String {
        format!("{}[{index}].{}", self.name(list), self.name(field))
    }

    /// A fresh value placeholder: `:v0`, `:v1`, …
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `SET path = value`.
    pub(crate) fn set(&mut self, path: String, value: AttributeValue) {
        let value = self.value(value);
        self.set_to(path, &value);
    }

    /// `SET path = <expression>`, for `list_append(…)` and the like.
    pub(crate) fn set_to(&mut self, mut path: String, expression: &str) {
        path.push_str(" = ");
        path.push_str(expression);
        self.set.push(path);
    }

    /// `REMOVE path` (a no-op, and no index write, when the attribute is absent).
    pub(crate) fn remove(&mut self, path: String) {
        self.remove.push(path);
    }

    /// `ADD path value` (a set's new members).
    pub(crate) fn add(&mut self, mut path: String, value: AttributeValue) {
        path.push(' ');
        path.push_str(&self.value(value));
        self.add.push(path);
    }

    /// `DELETE path value` (members taken out of a set).
    pub(crate) fn delete(&mut self, mut path: String, value: AttributeValue) {
        path.push(' ');
        path.push_str(&self.value(value));
        self.delete.push(path);
    }

    /// One more condition, joined to the others with `AND`.
    pub(crate) fn condition(&mut self, condition: &str) {
        self.conditions.push(format!("({condition})"));
    }

    /// The `UpdateExpression`, or `None` if nothing is updated.
    pub(crate) fn update_expression(&self) -> Option<String> {
        let clauses: Vec<String> = [
            ("SET", &self.set, ", "),
            ("REMOVE", &self.remove, ", "),
            ("ADD", &self.add, ", "),
            ("DELETE", &self.delete, ", "),
        ]
        .into_iter()
        .filter(|(_, parts, _)| !parts.is_empty())
        .map(|(keyword, parts, separator)| format!("{keyword} {}", parts.join(separator)))
        .collect();
        (!clauses.is_empty()).then(|| clauses.join(" "))
    }

    /// The `ConditionExpression`, or `None` if there is no condition.
    pub(crate) fn condition_expression(&self) -> Option<String> {
        (!self.conditions.is_empty()).then(|| self.conditions.join(" AND "))
    }

    /// `ExpressionAttributeNames`, or `None` when empty (DynamoDB refuses an empty map).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// `ExpressionAttributeValues`, or `None` when empty.
    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_handed_out_once_per_name_and_once_per_value() {
        let mut e = Expr::new();
        let status = e.name("status");
        e.set(status.clone(), AttributeValue::S("running".into()));
        let path = e.element("attempts", 2, "status");
        e.set(path, AttributeValue::S("running".into()));
        e.remove("#claim_rank".to_owned());
        e.names.insert("#claim_rank".into(), "claim_rank".into());
        let from = e.value(AttributeValue::S("claimed".into()));
        e.condition(&format!("{status} = {from}"));
        assert_eq!(
            e.update_expression().as_deref(),
            Some("SET #status = :v0, #attempts[2].#status = :v1 REMOVE #claim_rank")
        );
        assert_eq!(e.condition_expression().as_deref(), Some("(#status = :v2)"));
        let names = e.names().unwrap();
        assert_eq!(names.len(), 3);
        assert_eq!(names["#attempts"], "attempts");
        assert_eq!(e.values().unwrap().len(), 3);
    }

    #[test]
    fn an_empty_expression_has_no_clauses_and_no_maps() {
        let e = Expr::new();
        assert_eq!(e.update_expression(), None);
        assert_eq!(e.condition_expression(), None);
        assert!(e.names().is_none() && e.values().is_none());
    }

    #[test]
    fn set_members_are_added_and_deleted_in_their_own_clauses() {
        let mut e = Expr::new();
        let held = e.name("held");
        e.add(held, AttributeValue::Ss(vec!["a#1".into()]));
        let other = e.name("other");
        e.delete(other, AttributeValue::Ss(vec!["b#1".into()]));
        assert_eq!(
            e.update_expression().as_deref(),
            Some("ADD #held :v0 DELETE #other :v1")
        );
    }
}
