//! The generator behind `src/generated.rs` and `tests/generated_calls.rs`: typed parameter
//! structs, return types and one method per API method, from the PVE API schema that
//! fakepve ships (pinned by [`SCHEMA_SHA256`]). Shared by `examples/codegen.rs` (writes the
//! files) and `tests/generated_fresh.rs` (fails when regenerating would change them).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// SHA-256 of the schema JSON: fakepve 0.5.0's `fakepve/data/pve-api.json.gz`, decompressed
/// (made from pve-docs' `api-viewer/apidoc.js` of 2026-10-19: 449 paths, 680 methods).
pub const SCHEMA_SHA256: &str = "8d3d7781d3d1ea5944d879981213f178b708b05eb8a5a3592199477f7a38b455";

/// The path prefixes covered. `/nodes/{node}/qemu` is not generated yet.
pub const COVERED: &[&str] = &[
    "/access",
    "/cluster/ha",
    "/cluster/nextid",
    "/cluster/resources",
    "/cluster/status",
    "/nodes/{node}/network",
    "/nodes/{node}/status",
    "/nodes/{node}/storage",
    "/nodes/{node}/tasks",
    "/pools",
];

struct Method<'a> {
    path: &'a str,
    http: &'a str,
    info: &'a Value,
}

fn camel(s: &str) -> String {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn snake(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_owned();
    match out.as_str() {
        "type" | "match" | "ref" | "move" | "fn" | "mod" | "use" | "where" | "self" | "loop" => {
            format!("r#{out}")
        }
        _ if out.starts_with(|c: char| c.is_ascii_digit()) => format!("n{out}"),
        _ => out,
    }
}

fn fn_name(m: &Method<'_>) -> String {
    let words: Vec<&str> = m
        .path
        .split('/')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches(|c| c == '{' || c == '}'))
        .collect();
    snake(&format!(
        "{}_{}",
        m.http.to_ascii_lowercase(),
        words.join("_")
    ))
}

/// Properties of a parameter or return schema, with `allOf`/`oneOf` flattened (a `oneOf`
/// variant's properties are optional in the flat struct).
fn properties(schema: &Value) -> BTreeMap<String, (Value, bool)> {
    let mut out = BTreeMap::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            out.insert(k.clone(), (v.clone(), is_optional(v)));
        }
    }
    // A `oneOf` is told apart by its `type-property` (HA rules: `type`).
    if let Some(tp) = schema.get("type-property").and_then(Value::as_str) {
        let kinds: Vec<Value> = schema
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.get("instance-type").cloned())
            .collect();
        let mut prop = schema
            .get("type-property-schema")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"type": "string"}));
        if let Some(obj) = prop.as_object_mut() {
            obj.insert("enum".into(), Value::Array(kinds));
        }
        out.insert(tp.to_owned(), (prop, false));
    }
    for key in ["allOf", "oneOf"] {
        for part in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, (v, opt)) in properties(part) {
                let opt = opt || key == "oneOf";
                out.entry(k)
                    .and_modify(|e: &mut (Value, bool)| e.1 = e.1 && opt)
                    .or_insert((v, opt));
            }
        }
    }
    out
}

fn is_optional(v: &Value) -> bool {
    matches!(v.get("optional"), Some(Value::Number(n)) if n.as_u64() == Some(1))
        || v.get("optional") == Some(&Value::Bool(true))
}

fn doc_line(v: &Value, fallback: &str) -> String {
    let mut d = v
        .get("description")
        .and_then(Value::as_str)
        .map(|s| s.lines().next().unwrap_or_default().trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let vals: Vec<String> = e
            .iter()
            .map(|x| format!("`{}`", x.as_str().unwrap_or("?")))
            .collect();
        let _ = write!(d, " One of {}.", vals.join(", "));
    }
    if let Some(f) = v.get("format").and_then(Value::as_str) {
        let _ = write!(d, " Format `{f}`.");
    }
    d.replace('[', "\\[").replace(']', "\\]")
}

fn param_type(v: &Value) -> &'static str {
    match v.get("type").and_then(Value::as_str) {
        Some("integer") => "i64",
        Some("number") => "f64",
        Some("boolean") => "bool",
        Some("array") => "Vec<String>",
        _ => "String",
    }
}

/// A field of a return struct: PVE's loose values read with the crate's `de` helpers.
fn return_field(v: &Value) -> (&'static str, Option<&'static str>) {
    match v.get("type").and_then(Value::as_str) {
        Some("integer") => ("Option<i64>", Some("crate::de::opt_i64")),
        Some("number") => ("Option<f64>", Some("crate::de::opt_f64")),
        Some("boolean") => ("Option<bool>", Some("crate::de::opt_bool")),
        Some("string") => ("Option<String>", Some("crate::de::opt_string")),
        _ => ("Option<serde_json::Value>", None),
    }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|w| w.strip_prefix('{').and_then(|w| w.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

fn methods(schema: &Value) -> Vec<Method<'_>> {
    let mut out = Vec::new();
    if let Some(paths) = schema.get("paths").and_then(Value::as_object) {
        for (path, ms) in paths {
            if !COVERED
                .iter()
                .any(|c| path == c || path.starts_with(&format!("{c}/")))
            {
                continue;
            }
            for (http, info) in ms.as_object().into_iter().flatten() {
                out.push(Method { path, http, info });
            }
        }
    }
    out.sort_by(|a, b| (a.path, a.http).cmp(&(b.path, b.http)));
    out
}

fn return_struct(out: &mut String, name: &str, schema: &Value) {
    let _ = writeln!(
        out,
        "/// An item of the answer (generated from the schema's `returns`)."
    );
    let _ = writeln!(
        out,
        "#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]"
    );
    let _ = writeln!(out, "#[non_exhaustive]");
    let _ = writeln!(out, "pub struct {name} {{");
    for (key, (v, _)) in properties(schema) {
        let (ty, de) = return_field(&v);
        let _ = writeln!(out, "    /// {}", doc_line(&v, &format!("`{key}`.")));
        let _ = match de {
            Some(de) => writeln!(
                out,
                "    #[serde(rename = \"{key}\", default, deserialize_with = \"{de}\")]"
            ),
            None => writeln!(out, "    #[serde(rename = \"{key}\", default)]"),
        };
        let _ = writeln!(out, "    pub {}: {ty},", snake(&key));
    }
    let _ = writeln!(out, "    /// Members the schema does not list.");
    let _ = writeln!(out, "    #[serde(flatten)]");
    let _ = writeln!(out, "    pub other: BTreeMap<String, serde_json::Value>,");
    let _ = writeln!(out, "}}\n");
}

/// The Rust type of a method's answer, defining item structs as needed.
fn return_type(out: &mut String, base: &str, returns: Option<&Value>) -> String {
    let Some(r) = returns else {
        return "serde_json::Value".into();
    };
    let has_props = |v: &Value| !properties(v).is_empty();
    match r.get("type").and_then(Value::as_str) {
        Some("null") => "()".into(),
        Some("string") => "String".into(),
        Some("integer") => "Loose<i64>".into(),
        Some("boolean") => "Loose<bool>".into(),
        Some("object") if has_props(r) => {
            let name = format!("{base}Answer");
            return_struct(out, &name, r);
            name
        }
        Some("array") => match r.get("items") {
            Some(items) if has_props(items) => {
                let name = format!("{base}Item");
                return_struct(out, &name, items);
                format!("Vec<{name}>")
            }
            _ => "Vec<serde_json::Value>".into(),
        },
        _ => "serde_json::Value".into(),
    }
}

/// Formats generated code with the toolchain's rustfmt (so `cargo fmt --check` agrees).
pub fn rustfmt(code: &str) -> Result<String, String> {
    use std::io::Write as _;
    let mut child =
        std::process::Command::new(std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".into()))
            .args(["--edition", "2024"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("rustfmt: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("rustfmt: no stdin")?
        .write_all(code.as_bytes())
        .map_err(|e| format!("rustfmt: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("rustfmt: {e}"))?;
    if !out.status.success() {
        return Err(format!("rustfmt failed: {}", out.status));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// Generates `src/generated.rs`.
pub fn generate(schema: &Value) -> String {
    let mut types = String::new();
    let mut calls = String::new();
    for m in methods(schema) {
        let name = fn_name(&m);
        let base = camel(&name);
        let pp = path_params(m.path);
        let params = m.info.get("parameters").map(properties).unwrap_or_default();
        let query: Vec<(&String, &(Value, bool))> =
            params.iter().filter(|(k, _)| !pp.contains(k)).collect();
        // Parameter struct.
        let pname = format!("{base}Params");
        let _ = writeln!(types, "/// Parameters of `{} {}`.", m.http, m.path);
        let _ = writeln!(types, "#[derive(Clone, Debug, Default, PartialEq)]");
        let _ = writeln!(types, "#[non_exhaustive]");
        let _ = writeln!(types, "pub struct {pname} {{");
        for (k, (v, opt)) in &query {
            let ty = param_type(v);
            let req = if *opt { "" } else { " Required." };
            let _ = writeln!(types, "    /// {}{req}", doc_line(v, &format!("`{k}`.")));
            let _ = writeln!(types, "    pub {}: Option<{ty}>,", snake(k));
        }
        let _ = writeln!(types, "}}\n");
        let _ = writeln!(types, "impl {pname} {{");
        let _ = writeln!(
            types,
            "    /// The request parameters (booleans as `1`/`0`, arrays as repeated keys)."
        );
        let _ = writeln!(types, "    pub fn to_params(&self) -> Params {{");
        let _ = writeln!(
            types,
            "        #[allow(unused_mut, reason = \"some methods take no parameters\")]"
        );
        let _ = writeln!(types, "        let mut p = Params::new();");
        for (k, (v, _)) in &query {
            let f = snake(k);
            if param_type(v) == "Vec<String>" {
                let _ = writeln!(
                    types,
                    "        if let Some(v) = &self.{f} {{\n            p = p.set_all(\"{k}\", v.iter());\n        }}"
                );
            } else {
                let _ = writeln!(
                    types,
                    "        if let Some(v) = &self.{f} {{\n            p.insert(\"{k}\", v);\n        }}"
                );
            }
        }
        let _ = writeln!(types, "        p\n    }}\n}}\n");
        let required: Vec<&String> = query
            .iter()
            .filter(|(_, (_, o))| !o)
            .map(|(k, _)| *k)
            .collect();
        let ret = return_type(&mut types, &base, m.info.get("returns"));
        // The method.
        let args: String = pp.iter().map(|p| format!(", {}: &str", snake(p))).collect();
        let mut path_fmt = m.path.to_owned();
        for p in &pp {
            path_fmt = path_fmt.replace(
                &format!("{{{p}}}"),
                &format!("{{{}}}", snake(p).trim_start_matches("r#")),
            );
        }
        let _ = writeln!(calls, "    /// `{} {}` (generated).", m.http, m.path);
        if !required.is_empty() {
            let list: Vec<String> = required.iter().map(|k| format!("`{k}`")).collect();
            let _ = writeln!(
                calls,
                "    ///\n    /// Required in `params`: {}.",
                list.join(", ")
            );
        }
        let _ = writeln!(
            calls,
            "    pub async fn {name}(&self{args}, params: &{pname}) -> Result<{ret}, Error> {{"
        );
        for p in &pp {
            let s = snake(p);
            let _ = writeln!(
                calls,
                "        let {} = segment({s});",
                s.trim_start_matches("r#")
            );
        }
        let fmt = if pp.is_empty() {
            format!("\"{path_fmt}\".to_owned()")
        } else {
            format!("format!(\"{path_fmt}\")")
        };
        let _ = writeln!(calls, "        let path = {fmt};");
        let http = match m.http {
            "GET" => "Get",
            "POST" => "Post",
            "PUT" => "Put",
            _ => "Delete",
        };
        let _ = writeln!(
            calls,
            "        let env = self.request_envelope(Method::{http}, &path, &params.to_params()).await?;"
        );
        let _ = writeln!(
            calls,
            "        decode(env.data).map_err(|source| Error::Decode {{ method: \"{}\", path, source }})",
            m.http
        );
        let _ = writeln!(calls, "    }}\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Typed API generated from the PVE API schema (generated by `cargo run -p hakube-proxmox-api --example codegen`; do not edit)."
    );
    let _ = writeln!(out, "//!");
    let _ = writeln!(
        out,
        "//! Schema: fakepve 0.5.0's `pve-api.json.gz` (pve-docs `apidoc.js` of 2026-10-19),"
    );
    let _ = writeln!(out, "//! SHA-256 of the JSON `{SCHEMA_SHA256}`.");
    let _ = writeln!(
        out,
        "//! Paths: {}.",
        COVERED
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "//! Every parameter is an `Option` (`None`: not sent); the docs say which are required.\n"
    );
    let _ = writeln!(
        out,
        "#![allow(clippy::all, missing_docs, reason = \"generated code\")]\n"
    );
    let _ = writeln!(out, "use std::collections::BTreeMap;\n");
    let _ = writeln!(out, "use crate::wire::Params;");
    let _ = writeln!(
        out,
        "#[cfg(feature = \"client\")]\nuse crate::transport::Method;"
    );
    let _ = writeln!(
        out,
        "#[cfg(feature = \"client\")]\nuse crate::wire::{{decode, segment}};"
    );
    let _ = writeln!(
        out,
        "#[cfg(feature = \"client\")]\nuse crate::{{Client, Error}};\n"
    );
    let _ = writeln!(
        out,
        "/// A scalar PVE may send as a number, a string or `0`/`1`."
    );
    let _ = writeln!(out, "#[derive(Clone, Copy, Debug, Default, PartialEq)]");
    let _ = writeln!(out, "pub struct Loose<T>(pub T);\n");
    let _ = writeln!(
        out,
        "impl<'de> serde::Deserialize<'de> for Loose<i64> {{\n    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {{\n        crate::de::i64(d).map(Loose)\n    }}\n}}\n"
    );
    let _ = writeln!(
        out,
        "impl<'de> serde::Deserialize<'de> for Loose<bool> {{\n    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {{\n        let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;\n        crate::de::bool_value(&v).map(Loose).ok_or_else(|| serde::de::Error::custom(format!(\"expected a boolean, got {{v}}\")))\n    }}\n}}\n"
    );
    out.push_str(&types);
    let _ = writeln!(out, "#[cfg(feature = \"client\")]\nimpl Client {{");
    out.push_str(&calls);
    let _ = writeln!(out, "}}");
    out
}

/// Methods the generated test calls knowing fakepve 0.5.0 refuses them, with the refusal
/// asserted (the call reached the server and its error decoded): (method, path, the
/// expected error text, why).
pub const EXPECTED_REFUSALS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        "404",
        "fakepve 0.5.0 does not serve copying a volume",
    ),
    (
        "POST",
        "/nodes/{node}/storage/{storage}/upload",
        "bad upload request",
        "an upload is multipart (Client::upload); the generated method sends a form",
    ),
];

/// A sample value for a parameter the generated test must send.
fn sample(m: &Method<'_>, key: &str, v: &Value) -> Option<String> {
    // Log in as the user the test runs as (a wrong password would be a 401).
    if (m.http, m.path) == ("POST", "/access/ticket") {
        match key {
            "username" => return Some("Some(\"root@pam\".to_owned())".into()),
            "password" => return Some("Some(\"secret\".to_owned())".into()),
            _ => {}
        }
    }
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        return e
            .first()
            .and_then(Value::as_str)
            .map(|s| format!("Some({s:?}.to_owned())"));
    }
    Some(match (key, param_type(v)) {
        (_, "i64") => "Some(100)".into(),
        (_, "bool") => "Some(false)".into(),
        (_, "Vec<String>") => "Some(vec![\"x\".to_owned()])".into(),
        ("sid" | "resources", _) => "Some(\"vm:100\".to_owned())".into(),
        ("nodes" | "node", _) => "Some(\"pve1\".to_owned())".into(),
        ("vms", _) => "Some(\"100\".to_owned())".into(),
        ("storage", _) => "Some(\"local\".to_owned())".into(),
        ("digest", _) => return None,
        ("userid", _) => "Some(\"gen@pve\".to_owned())".into(),
        ("iface", _) => "Some(\"vmbr9\".to_owned())".into(),
        ("tokenid", _) => "Some(\"gentoken\".to_owned())".into(),
        ("path", _) => "Some(\"/vms/100\".to_owned())".into(),
        ("roles", _) => "Some(\"PVEAuditor\".to_owned())".into(),
        ("password", _) => "Some(\"secret-gen\".to_owned())".into(),
        ("size", _) => "Some(\"4M\".to_owned())".into(),
        ("remove-vanished", _) => "Some(\"acl\".to_owned())".into(),
        ("reference", _) => "Some(\"docker.io/library/busybox:latest\".to_owned())".into(),
        ("filename", _) => "Some(\"vm-100-disk-7\".to_owned())".into(),
        ("url", _) => "Some(\"https://127.0.0.1/gen.iso\".to_owned())".into(),
        ("target", _) => "Some(\"local:100/vm-100-disk-8.raw\".to_owned())".into(),
        (k, _) => format!("Some(\"gen-{}\".to_owned())", k.replace('_', "-")),
    })
}

/// Generates `tests/generated_calls.rs`: every generated method called against fakepve.
pub fn generate_test(schema: &Value) -> String {
    let mut ms = methods(schema);
    let rank = |h: &str| match h {
        "POST" => 0,
        "PUT" => 1,
        "GET" => 2,
        _ => 3,
    };
    // Creations first, deletions last and deepest path first (`/pools/{poolid}` before `/pools`).
    ms.sort_by(|a, b| {
        let del = |m: &Method<'_>| if m.http == "DELETE" { m.path.len() } else { 0 };
        (rank(a.http), std::cmp::Reverse(del(a)), a.path).cmp(&(
            rank(b.http),
            std::cmp::Reverse(del(b)),
            b.path,
        ))
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Every generated method called against fakepve (generated by `cargo run -p hakube-proxmox-api --example codegen`; do not edit)."
    );
    let _ = writeln!(
        out,
        "//! A call passes when it reached the server and its answer decoded into the generated type"
    );
    let _ = writeln!(
        out,
        "//! (an API error from the fake's checks is an answer too); it fails on a decode or transport error.\n"
    );
    let _ = writeln!(
        out,
        "#![allow(clippy::all, clippy::unwrap_used, reason = \"generated test\")]\n"
    );
    let _ = writeln!(out, "mod common;\n");
    let _ = writeln!(out, "use hakube_proxmox_api::generated::*;");
    let _ = writeln!(out, "use hakube_proxmox_api::Error;\n");
    let _ = writeln!(
        out,
        "fn check<T: std::fmt::Debug>(what: &str, r: Result<T, Error>, ok: &mut u32, api: &mut Vec<String>) {{"
    );
    let _ = writeln!(
        out,
        "    match r {{\n        Ok(_) => *ok += 1,\n        Err(Error::Api {{ status, message, .. }}) => api.push(format!(\"{{what}}: {{status}} {{message}}\")),\n        Err(e) => panic!(\"{{what}}: {{e:?}}\"),\n    }}\n}}\n"
    );
    let _ = writeln!(
        out,
        "#[tokio::test]\nasync fn every_generated_method_against_fakepve() {{"
    );
    let _ = writeln!(
        out,
        "    let Some(fake) = common::Fake::start(0.0).await else {{ return }};"
    );
    let _ = writeln!(
        out,
        "    fake.cmd(serde_json::json!({{\"op\": \"add_node\", \"name\": \"pve1\"}})).await;"
    );
    let _ = writeln!(
        out,
        "    fake.cmd(serde_json::json!({{\"op\": \"add_vm\", \"vmid\": 100, \"name\": \"v100\", \"node\": \"pve1\", \"config\": {{\"memory\": 512}}}})).await;"
    );
    let _ = writeln!(out, "    let c = fake.client();");
    let _ = writeln!(
        out,
        "    let upid = c.qemu_start(\"pve1\", 100).await.unwrap();"
    );
    let _ = writeln!(out, "    c.wait_task(&upid).await.unwrap();");
    let _ = writeln!(out, "    let upid = upid.as_str().to_owned();");
    let _ = writeln!(out, "    let (mut ok, mut api) = (0u32, Vec::new());");
    for m in &ms {
        let name = fn_name(m);
        let base = camel(&name);
        let pp = path_params(m.path);
        let params = m.info.get("parameters").map(properties).unwrap_or_default();
        let mut fields = String::new();
        for (k, (v, opt)) in &params {
            if pp.contains(k) || *opt {
                continue;
            }
            if let Some(val) = sample(m, k, v) {
                let _ = write!(fields, " p.{} = {val};", snake(k));
            }
        }
        // A `oneOf` body (HA rules): the first variant, its discriminator and required keys.
        let variant = m.info.get("parameters").and_then(|p| {
            p.get("oneOf")
                .or_else(|| {
                    p.get("allOf")?
                        .as_array()?
                        .iter()
                        .find_map(|a| a.get("oneOf"))
                })
                .and_then(|o| o.as_array()?.first())
        });
        if let Some(var) = variant {
            if let Some(t) = var.get("instance-type").and_then(Value::as_str) {
                let _ = write!(fields, " p.r#type = Some({t:?}.to_owned());");
            }
            for (k, (v, opt)) in properties(var) {
                if !opt
                    && !pp.contains(&k)
                    && k != "type"
                    && let Some(val) = sample(m, &k, &v)
                {
                    let _ = write!(fields, " p.{} = {val};", snake(&k));
                }
            }
        }
        let binding = if fields.is_empty() {
            "let p"
        } else {
            "let mut p"
        };
        let mut args: Vec<String> = pp
            .iter()
            .map(|p| match p.as_str() {
                "node" => "\"pve1\"".to_owned(),
                "upid" => "&upid".to_owned(),
                "sid" => "\"vm:100\"".to_owned(),
                "userid" => "\"gen@pve\"".to_owned(),
                "iface" => "\"vmbr9\"".to_owned(),
                "tokenid" => "\"gentoken\"".to_owned(),
                "storage" => "\"local\"".to_owned(),
                // The volume the POST to .../content made (filename vm-100-disk-7).
                "volume" => "\"local:100/vm-100-disk-7.raw\"".to_owned(),
                other => format!("\"gen-{other}\""),
            })
            .collect();
        args.push("&p".to_owned());
        let _ = writeln!(
            out,
            "    {{\n        {binding} = {base}Params::default();{fields}\n        check(\"{} {}\", c.{name}({}).await, &mut ok, &mut api);\n    }}",
            m.http,
            m.path,
            args.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "    eprintln!(\"{{ok}} of {} generated methods answered 2xx; API errors: {{api:#?}}\");",
        ms.len()
    );
    // The refusals allowed: deleting what an earlier call already deleted, and the
    // expected ones (each seen, with its text).
    let _ = writeln!(out, "    let expected: &[(&str, &str)] = &[");
    for (http, path, text, why) in EXPECTED_REFUSALS {
        let _ = writeln!(out, "        // {why}.");
        let _ = writeln!(out, "        (\"{http} {path}: \", {text:?}),");
    }
    let _ = writeln!(out, "    ];");
    let _ = writeln!(
        out,
        "    for (what, text) in expected {{\n        assert!(api.iter().any(|e| e.starts_with(what) && e.contains(text)), \"{{what}} not refused with {{text}}: {{api:#?}}\");\n    }}"
    );
    let _ = writeln!(
        out,
        "    assert!(api.iter().all(|e| e.contains(\"does not exist\") || expected.iter().any(|(w, _)| e.starts_with(w))), \"{{api:#?}}\");"
    );
    let _ = writeln!(
        out,
        "    assert!(ok as usize + api.len() == {}, \"{{ok}} ok, {{api:#?}}\");",
        ms.len()
    );
    let _ = writeln!(out, "}}");
    out
}
