//! A small checker for structural OpenAPI v3 schemas as Kubernetes applies them to custom
//! resources with strict field validation: `type`, `properties` (unknown fields rejected
//! unless `x-kubernetes-preserve-unknown-fields`), `required`, `enum`, `items`, `minimum`,
//! `maximum`, `x-kubernetes-int-or-string`.

use serde_json::Value;

/// Every violation of `schema` by `value`, as `path: problem`.
pub fn check(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    walk(schema, value, "", &mut errors);
    errors
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let here = if path.is_empty() { "." } else { path };
    if schema["x-kubernetes-int-or-string"] == true {
        if !matches!(type_name(value), "integer" | "string") {
            errors.push(format!(
                "{here}: expected integer or string, got {}",
                type_name(value)
            ));
        }
        return;
    }
    if let Some(want) = schema["type"].as_str() {
        let got = type_name(value);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            errors.push(format!("{here}: expected {want}, got {got}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{here}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            errors.push(format!("{here}: {n} < minimum {min}"));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            errors.push(format!("{here}: {n} > maximum {max}"));
        }
    }
    if let Value::Object(map) = value {
        for req in schema["required"].as_array().into_iter().flatten() {
            if let Some(k) = req.as_str()
                && !map.contains_key(k)
            {
                errors.push(format!("{here}: missing required field `{k}`"));
            }
        }
        let props = schema["properties"].as_object();
        let open = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => walk(sub, v, &format!("{path}.{k}"), errors),
                None if open || props.is_none() => {}
                None => errors.push(format!("{here}: unknown field `{k}`")),
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
}
