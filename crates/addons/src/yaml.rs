//! Deterministic YAML: object keys sorted whatever serde_json's map order is, documents joined
//! with `---`.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use crate::Error;

/// Header written at the top of every rendered YAML file.
pub const HEADER: &str = "# Rendered by hakube-addons: change the input, not this file.\n";

/// Serialises a JSON value with object keys in sorted order (stable across serde_json features).
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut m = serializer.serialize_map(Some(keys.len()))?;
                for k in keys {
                    m.serialize_entry(k, &Sorted(&map[k]))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut s = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    s.serialize_element(&Sorted(item))?;
                }
                s.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// One YAML document (no header).
pub(crate) fn to_yaml(path: &str, value: &Value) -> Result<String, Error> {
    let mut out = serde_saphyr::to_string(&Sorted(value)).map_err(|source| Error::Render {
        path: path.to_owned(),
        source,
    })?;
    if let Some(rest) = out.strip_prefix("---\n") {
        out = rest.to_owned();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// A YAML file of one or more documents, with the header.
pub(crate) fn file(path: &str, docs: &[Value]) -> Result<String, Error> {
    let mut out = String::from(HEADER);
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(path, doc)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_level_and_strings_that_look_like_other_types_are_quoted() {
        let v = json!({ "b": { "z": 1, "a": [ { "y": "true", "x": "10.0.0.1" } ] }, "a": "" });
        let text = file("t.yaml", &[v.clone(), json!({ "k": "0777" })]).expect("renders");
        assert_eq!(
            text,
            format!(
                "{HEADER}a: \"\"\nb:\n  a:\n  - x: \"10.0.0.1\"\n    \"y\": \"true\"\n  z: 1\n---\nk: \"0777\"\n"
            )
        );
        // (`y` is quoted too: a YAML 1.1 boolean.) And it reads back to the same values.
        let back: Vec<Value> = serde_saphyr::from_multiple(&text).expect("parses");
        assert_eq!(back, [v, json!({ "k": "0777" })]);
    }
}
