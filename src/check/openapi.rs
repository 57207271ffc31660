//! OpenAPI value validation of a custom resource, as the API server runs it with
//! kube-openapi (`pkg/validation/validate`) after defaulting: types (`nullable`), enums,
//! string, number, list and object bounds, `pattern` with Go's RE2 semantics, the formats
//! Kubernetes supports, and `allOf`/`anyOf`/`oneOf`/`not`. Errors are worded as the API
//! server words them, and those that stop the CEL rules from running are marked.

use serde_json::{Map, Value};

use super::field_error::FieldError;
use super::formats;
use super::patterns::Patterns;
use super::text::{join, quoted_value};

/// Validate `value` against `schema` (the CRD's openAPIV3Schema) from the root: every
/// error, in the API server's wording.
pub fn validate(schema: &Value, value: &Value, patterns: &Patterns) -> Vec<FieldError> {
    let mut errors = Vec::new();
    Validator { patterns }.node(schema, value, "", &mut errors);
    errors
}

struct Validator<'a> {
    patterns: &'a Patterns,
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "(root)".into()
    } else {
        path.to_string()
    }
}

impl Validator<'_> {
    fn node(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
        let Some(schema) = schema.as_object() else {
            return;
        };
        if value.is_null() {
            // kube-openapi checks only the type and the enum of a null.
            self.type_of(schema, value, path, errors);
            self.enumeration(schema, value, path, errors);
            return;
        }
        self.type_of(schema, value, path, errors);
        self.composition(schema, value, path, errors);
        match value {
            Value::String(text) => self.string(schema, text, path, errors),
            Value::Number(_) => number(schema, value, path, errors),
            Value::Array(items) => self.array(schema, items, path, errors),
            Value::Object(fields) => self.object(schema, fields, path, errors),
            Value::Bool(_) | Value::Null => {}
        }
        self.enumeration(schema, value, path, errors);
    }

    fn type_of(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(expected) = schema.get("type").and_then(Value::as_str) else {
            return;
        };
        let nullable = schema.get("nullable").and_then(Value::as_bool) == Some(true);
        let ok = match value {
            Value::Null => nullable,
            Value::Bool(_) => expected == "boolean",
            Value::String(_) => expected == "string",
            Value::Array(_) => expected == "array",
            Value::Object(_) => expected == "object",
            Value::Number(n) => {
                expected == "number"
                    || expected == "integer"
                        && (n.is_i64()
                            || n.is_u64()
                            || n.as_f64().is_some_and(|f| f.fract() == 0.0))
            }
        };
        if !ok {
            let actual = json_type(value);
            errors.push(FieldError::blocking(
                &at(path),
                format!(
                    "Invalid value: {}: {} in body must be of type {expected}: {actual:?}",
                    quoted_value(value),
                    at(path)
                ),
            ));
        }
    }

    fn enumeration(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
            return;
        };
        if allowed.is_empty() || allowed.iter().any(|a| same_value(a, value)) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => format!("{s:?}"),
                other => format!("{:?}", other.to_string()),
            })
            .collect();
        errors.push(FieldError::blocking(
            &at(path),
            format!(
                "Unsupported value: {}: supported values: {}",
                quoted_value(value),
                supported.join(", ")
            ),
        ));
    }

    fn string(
        &self,
        schema: &Map<String, Value>,
        text: &str,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let length = text.chars().count() as u64;
        let here = at(path);
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            let unit = if max == 1 { "byte" } else { "bytes" };
            errors.push(FieldError::blocking(
                &here,
                format!("Too long: may not be more than {max} {unit}"),
            ));
            return;
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            errors.push(invalid(
                path,
                &Value::String(text.into()),
                &format!("should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(re) = self.patterns.get(pattern)
            && !re.is_match(text)
        {
            errors.push(invalid(
                path,
                &Value::String(text.into()),
                &format!("should match '{pattern}'"),
            ));
            return;
        }
        if let Some(format) = schema.get("format").and_then(Value::as_str)
            && !formats::valid(format, text)
        {
            errors.push(invalid(
                path,
                &Value::String(text.into()),
                &format!("must be of type {format}"),
            ));
        }
    }

    fn array(
        &self,
        schema: &Map<String, Value>,
        items: &[Value],
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
        let size = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && size < min
        {
            errors.push(FieldError::new(
                &at(path),
                format!(
                    "Invalid value: \"array\": {} in body should have at least {min} items",
                    at(path)
                ),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && size > max
        {
            let unit = if max == 1 { "item" } else { "items" };
            errors.push(FieldError::blocking(
                &at(path),
                format!("Too many: {size}: must have at most {max} {unit}"),
            ));
        }
    }

    fn object(
        &self,
        schema: &Map<String, Value>,
        fields: &Map<String, Value>,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        property_count(schema, fields.len() as u64, path, errors);
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, child) in fields {
            let child_path = join(path, key);
            match properties.and_then(|p| p.get(key)) {
                Some(child_schema) => self.node(child_schema, child, &child_path, errors),
                None => match additional {
                    Some(Value::Bool(false)) => errors.push(FieldError::new(
                        &at(path),
                        format!("Forbidden: {child_path} is a forbidden property"),
                    )),
                    Some(child_schema @ Value::Object(_)) => {
                        self.node(child_schema, child, &child_path, errors)
                    }
                    _ => {}
                },
            }
        }
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(required) {
                errors.push(FieldError::blocking(
                    &join(path, required),
                    "Required value".into(),
                ));
            }
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`; the branches hold value validations only.
    fn composition(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<FieldError>,
    ) {
        let branch_errors = |branch: &Value| {
            let mut found = Vec::new();
            self.node(branch, value, path, &mut found);
            found
        };
        let branches = |key: &str| {
            schema
                .get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let any_of = branches("anyOf");
        if !any_of.is_empty() && !any_of.iter().any(|b| branch_errors(b).is_empty()) {
            errors.push(invalid(
                path,
                value,
                "must validate at least one schema (anyOf)",
            ));
        }
        let one_of = branches("oneOf");
        if !one_of.is_empty() {
            let valid = one_of
                .iter()
                .filter(|b| branch_errors(b).is_empty())
                .count();
            if valid != 1 {
                errors.push(invalid(
                    path,
                    value,
                    "must validate one and only one schema (oneOf)",
                ));
            }
        }
        for branch in branches("allOf") {
            errors.extend(branch_errors(&branch));
        }
        if let Some(not) = schema.get("not")
            && branch_errors(not).is_empty()
        {
            errors.push(invalid(path, value, "must not validate the schema (not)"));
        }
    }
}

/// `minProperties` and `maxProperties`.
fn property_count(
    schema: &Map<String, Value>,
    count: u64,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        errors.push(FieldError::new(
            &at(path),
            format!(
                "Invalid value: \"object\": {} in body should have at least {min} properties",
                at(path)
            ),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        let unit = if max == 1 { "item" } else { "items" };
        errors.push(FieldError::blocking(
            &at(path),
            format!("Too many: {count}: must have at most {max} {unit}"),
        ));
    }
}

/// Number bounds, `multipleOf`, and the range of `format: int32`.
fn number(schema: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(n) = value.as_f64() else {
        return;
    };
    let is_integer = schema.get("type").and_then(Value::as_str) == Some("integer");
    if is_integer
        && schema.get("format").and_then(Value::as_str) == Some("int32")
        && value.as_i64().is_none_or(|i| i32::try_from(i).is_err())
    {
        errors.push(FieldError::new(
            &at(path),
            format!("Invalid value: \"\": Checked value must be of type integer with format int32 in {}", at(path)),
        ));
    }
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let exclusive = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(max) = bound("maximum") {
        let bad = if exclusive("exclusiveMaximum") {
            n >= max
        } else {
            n > max
        };
        if bad {
            let op = if exclusive("exclusiveMaximum") {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(invalid(path, value, &format!("should be {op} {max}")));
        }
    }
    if let Some(min) = bound("minimum") {
        let bad = if exclusive("exclusiveMinimum") {
            n <= min
        } else {
            n < min
        };
        if bad {
            let op = if exclusive("exclusiveMinimum") {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(invalid(path, value, &format!("should be {op} {min}")));
        }
    }
    if let Some(factor) = bound("multipleOf")
        && factor > 0.0
        && (n / factor).fract() != 0.0
    {
        errors.push(invalid(
            path,
            value,
            &format!("should be a multiple of {factor}"),
        ));
    }
}

/// `field.Invalid` with a kube-openapi detail: `<path> in body <detail>`.
fn invalid(path: &str, value: &Value, detail: &str) -> FieldError {
    FieldError::new(
        &at(path),
        format!(
            "Invalid value: {}: {} in body {detail}",
            quoted_value(value),
            at(path)
        ),
    )
}

/// kube-openapi compares enum members after converting to the member's type, so `1` and
/// `1.0` are the same number.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
