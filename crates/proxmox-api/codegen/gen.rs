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

/// The path prefixes covered.
pub const COVERED: &[&str] = &[
    "/access",
    "/cluster/ha",
    "/cluster/nextid",
    "/cluster/resources",
    "/cluster/status",
    "/nodes/{node}/network",
    "/nodes/{node}/qemu",
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
        "type" | "match" | "ref" | "move" | "fn" | "mod" | "use" | "where" | "self" | "loop"
        | "macro" | "async" | "await" | "dyn" | "abstract" | "become" | "box" | "do" | "final"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "try" | "gen"
        | "const" | "static" | "struct" | "enum" | "trait" | "impl" | "in" | "for" | "if"
        | "else" | "while" | "return" | "break" | "continue" | "as" | "extern" | "let" | "mut"
        | "pub" | "unsafe" | "true" | "false" => {
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

/// Where the keys of a named format come from.
enum NamedKeys {
    /// Spelled out here from the PVE source that registers the format.
    Keys(Value),
    /// The format the schema spells out for this key (`pve-qm-ide` is `ide[n]`'s).
    SameAs(&'static str),
}

/// A named property-string format: (the schema's name, the Rust type, where the keys come
/// from).
type NamedFormat = (&'static str, &'static str, String, NamedKeys);

/// Formats the schema only names (a string `format`) that are property strings, with their
/// keys as the PVE source registers them (`register_format(NAME, $fmt)`); key attributes
/// kept: `type`, `optional`, `default_key`, `enum`, `alias`/`keyAlias`. Named formats not
/// listed here are not property strings (`pve-node`, `pve-vmid`, lists such as
/// `pve-tag-list` or `storage-pair-list`, ...) and stay strings.
fn named_formats() -> Vec<NamedFormat> {
    use serde_json::json;
    let s = |d: &str| json!({"type": "string", "optional": 1, "description": d});
    let b = |d: &str| json!({"type": "boolean", "optional": 1, "description": d});
    let i = |d: &str| json!({"type": "integer", "optional": 1, "description": d});
    let e = |d: &str, vals: &[&str]| json!({"type": "string", "optional": 1, "enum": vals, "description": d});
    // The sources, read at these versions.
    let qs = |what: &str| format!("qemu-server 9.2.6 (commit e6352be6) {what}");
    let common = |what: &str| format!("libpve-common-perl 9.2.1 (commit f665029e) {what}");
    let storage = |what: &str| format!("libpve-storage-perl 9.1.7 {what}");
    let access = |what: &str| format!("libpve-access-control 9.1.1 {what}");
    vec![
        (
            "pve-qm-ipconfig",
            "IpconfigProperty",
            qs("`src/PVE/QemuServer/Network.pm` `$ipconfig_fmt`"),
            NamedKeys::Keys(json!({
                "ip": s("IPv4 address in CIDR format, or `dhcp`."),
                "gw": s("Default IPv4 gateway."),
                "ip6": s("IPv6 address in CIDR format, `dhcp` or `auto`."),
                "gw6": s("Default IPv6 gateway."),
            })),
        ),
        (
            "pve-qm-ide",
            "IdeProperty",
            qs("`src/PVE/QemuServer/Drive.pm` (`$ide_fmt`, also `ide[n]`'s format)"),
            NamedKeys::SameAs("ide[n]"),
        ),
        (
            "pve-qm-boot",
            "BootProperty",
            qs("`src/PVE/QemuServer.pm` `$boot_fmt`"),
            NamedKeys::Keys(json!({
                "legacy": {"type": "string", "optional": 1, "default_key": 1,
                           "description": "Deprecated boot order letters (`[acdn]{1,4}`); use `order`."},
                "order": s("Boot devices in order, `;`-separated (`scsi0;net0`)."),
            })),
        ),
        (
            "pve-qm-cicustom",
            "CicustomProperty",
            qs("`src/PVE/QemuServer.pm` `$cicustom_fmt`"),
            NamedKeys::Keys(json!({
                "meta": s("Volume with the cloud-init meta data."),
                "network": s("Volume with the cloud-init network config."),
                "user": s("Volume with the cloud-init user data."),
                "vendor": s("Volume with the cloud-init vendor data."),
            })),
        ),
        (
            "pve-qm-smbios1",
            "Smbios1Property",
            qs("`src/PVE/QemuServer.pm` `$smbios1_fmt`"),
            NamedKeys::Keys(json!({
                "uuid": s("SMBIOS type 1 UUID."),
                "version": s("Version (base64 when `base64` is set)."),
                "serial": s("Serial number (base64 when `base64` is set)."),
                "manufacturer": s("Manufacturer (base64 when `base64` is set)."),
                "product": s("Product (base64 when `base64` is set)."),
                "sku": s("SKU (base64 when `base64` is set)."),
                "family": s("Family (base64 when `base64` is set)."),
                "base64": b("The other values are base64-encoded."),
            })),
        ),
        (
            "pve-qm-watchdog",
            "WatchdogProperty",
            qs("`src/PVE/QemuServer.pm` `$watchdog_fmt`"),
            NamedKeys::Keys(json!({
                "model": {"type": "string", "optional": 1, "default_key": 1,
                          "enum": ["i6300esb", "ib700"], "description": "The emulated watchdog."},
                "action": e("What to do when the guest stops polling the watchdog.",
                            &["reset", "shutdown", "poweroff", "pause", "debug", "none"]),
            })),
        ),
        (
            "pve-qm-rng",
            "RngProperty",
            qs("`src/PVE/QemuServer/RNG.pm` `$rng_fmt`"),
            NamedKeys::Keys(json!({
                "source": {"type": "string", "default_key": 1,
                           "enum": ["/dev/urandom", "/dev/random", "/dev/hwrng"],
                           "description": "The host's entropy source."},
                "max_bytes": i("Most bytes of entropy per `period` (0: no limit)."),
                "period": i("The period of `max_bytes`, in milliseconds."),
            })),
        ),
        (
            "pve-qm-hostpci",
            "HostpciProperty",
            qs("`src/PVE/QemuServer/PCI.pm` `$hostpci_fmt`"),
            NamedKeys::Keys(json!({
                "host": {"type": "string", "optional": 1, "default_key": 1,
                         "description": "Host PCI device(s), `bus:dev.func`, `;`-separated."},
                "mapping": s("A cluster-wide PCI mapping's id (instead of `host`)."),
                "rombar": b("The device's ROM is visible in the guest's memory map."),
                "romfile": s("A ROM file under /usr/share/kvm/."),
                "pcie": b("On the PCI-express bus (q35)."),
                "x-vga": b("vfio-vga support."),
                "legacy-igd": b("Legacy IGD mode."),
                "mdev": s("Mediated device type."),
                "vendor-id": s("PCI vendor id shown to the guest (`0xNNNN`)."),
                "device-id": s("PCI device id shown to the guest (`0xNNNN`)."),
                "sub-vendor-id": s("PCI subsystem vendor id shown to the guest (`0xNNNN`)."),
                "sub-device-id": s("PCI subsystem device id shown to the guest (`0xNNNN`)."),
                "driver": e("`keep`: neither reset nor bound to vfio-pci.", &["vfio", "keep"]),
            })),
        ),
        (
            "pve-vm-cpu-conf",
            "CpuProperty",
            qs("`src/PVE/QemuServer/CPUConfig.pm` `$cpu_fmt`"),
            NamedKeys::Keys(json!({
                "cputype": {"type": "string", "optional": 1, "default_key": 1,
                            "description": "Emulated CPU type (custom models prefixed `custom-`)."},
                "reported-model": s("CPU model reported to the guest (custom models only)."),
                "hidden": b("Do not identify as a KVM virtual machine."),
                "hv-vendor-id": s("Hyper-V vendor id."),
                "flags": s("CPU flags, `;`-separated, each `+FLAG` or `-FLAG`."),
                "guest-phys-bits": i("Physical address bits available to the guest."),
                "phys-bits": s("Physical address bits reported to the guest (8-64 or `host`)."),
                "level": i("Highest basic CPUID leaf the guest can query."),
            })),
        ),
        (
            "pve-qemu-sev-fmt",
            "AmdSevProperty",
            qs("`src/PVE/QemuServer/CPUConfig.pm` `$sev_fmt`"),
            NamedKeys::Keys(json!({
                "type": {"type": "string", "default_key": 1, "enum": ["std", "es", "snp"],
                         "description": "SEV, SEV-ES or SEV-SNP."},
                "no-debug": b("Policy: no debugging of the guest."),
                "no-key-sharing": b("Policy: no key sharing with other guests."),
                "allow-smt": b("Policy: allow SMT (SEV-SNP)."),
                "kernel-hashes": b("Kernel hashes in the guest firmware."),
            })),
        ),
        (
            "pve-qemu-tdx-fmt",
            "IntelTdxProperty",
            qs("`src/PVE/QemuServer/CPUConfig.pm` `$tdx_fmt`"),
            NamedKeys::Keys(json!({
                "type": {"type": "string", "default_key": 1, "enum": ["tdx"],
                         "description": "Enable TDX."},
                "attestation": {"type": "boolean",
                                "description": "TDX attestation (the quote generation socket)."},
                "vsock-cid": i("vsock CID of the quote generation service."),
                "vsock-port": i("vsock port of the quote generation service."),
            })),
        ),
        (
            "pve-startup-order",
            "StartupProperty",
            common(
                "`src/PVE/JSONSchema.pm` `pve_parse_startup_order` (`[[order=]N][,up=N][,down=N]`)",
            ),
            NamedKeys::Keys(json!({
                "order": {"type": "integer", "optional": 1, "default_key": 1,
                          "description": "Start order (shutdown in reverse)."},
                "up": i("Seconds to wait after starting, before the next guest."),
                "down": i("Seconds to wait after stopping, before the next guest."),
            })),
        ),
        (
            "proxmox-remote",
            "RemoteProperty",
            common("`src/PVE/JSONSchema.pm` `$remote_format`"),
            NamedKeys::Keys(json!({
                "host": {"type": "string", "description": "Remote host name or address."},
                "port": i("Remote port."),
                "apitoken": {"type": "string",
                             "description": "The full API token, `PVEAPIToken=USER@REALM!ID=SECRET`."},
                "fingerprint": s("The remote certificate's SHA-256 fingerprint."),
            })),
        ),
        (
            "prune-backups",
            "PruneBackupsProperty",
            storage("`src/PVE/Storage/Plugin.pm` `$prune_backups_format`"),
            NamedKeys::Keys(json!({
                "keep-all": b("Keep all backups."),
                "keep-last": i("Keep the last N backups."),
                "keep-hourly": i("Keep the backups of the last N hours."),
                "keep-daily": i("Keep the backups of the last N days."),
                "keep-weekly": i("Keep the backups of the last N weeks."),
                "keep-monthly": i("Keep the backups of the last N months."),
                "keep-yearly": i("Keep the backups of the last N years."),
            })),
        ),
        (
            "realm-sync-options",
            "RealmSyncOptionsProperty",
            access("`src/PVE/Auth/Plugin.pm` `$realm_sync_options_desc`"),
            NamedKeys::Keys(json!({
                "scope": e("What to sync.", &["users", "groups", "both"]),
                "remove-vanished": s("What to remove when it vanished: `acl;properties;entry` or `none`."),
                "full": b("Deprecated: use `remove-vanished`."),
                "enable-new": b("Enable new users at once."),
                "purge": b("Deprecated: use `remove-vanished`."),
            })),
        ),
        (
            "pve-tfa-config",
            "TfaProperty",
            access("`src/PVE/Auth/Plugin.pm` `$tfa_format`"),
            NamedKeys::Keys(json!({
                "type": {"type": "string", "enum": ["yubico", "oath"],
                         "description": "The second factor's kind."},
                "id": s("Yubico API id."),
                "key": s("Yubico API key."),
                "url": s("Yubico API URL."),
                "digits": i("TOTP digits."),
                "step": i("TOTP period in seconds."),
            })),
        ),
    ]
}

/// An indexed key (`net[n]`): its prefix.
fn indexed(key: &str) -> Option<&str> {
    key.strip_suffix("[n]")
}

/// The stem an inline format is named by: `net[n]` and `efidisk0` give `net`, `efidisk`.
fn stem(key: &str) -> &str {
    indexed(key)
        .unwrap_or(key)
        .trim_end_matches(|c: char| c.is_ascii_digit())
}

/// A property-string type: its keys and where they come from.
struct FormatType {
    keys: serde_json::Map<String, Value>,
    origin: String,
}

/// Every property-string format the covered methods use, one Rust type each: the formats
/// the schema spells out are merged by key stem (a disk's format with and without
/// `import-from` is one `ScsiProperty`; two stems with the same keys, `machine` and
/// `runningmachine`, share a type), and the named ones of [`named_formats`].
#[derive(Default)]
pub struct Formats {
    /// Type name -> format, in the order first seen.
    types: Vec<(String, FormatType)>,
    /// Key stem of a spelled-out format -> type name.
    by_stem: BTreeMap<String, String>,
    /// Named format -> type name.
    by_name: BTreeMap<String, String>,
}

impl Formats {
    /// Collects the formats of every covered method's parameters and answers.
    fn collect(schema: &Value) -> Self {
        let mut f = Self::default();
        let mut seen_named = Vec::new();
        for m in methods(schema) {
            let mut props: Vec<(String, Value)> = Vec::new();
            if let Some(p) = m.info.get("parameters") {
                props.extend(properties(p).into_iter().map(|(k, (v, _))| (k, v)));
            }
            if let Some(r) = m.info.get("returns") {
                let item = if r.get("type").and_then(Value::as_str) == Some("array") {
                    r.get("items").unwrap_or(r)
                } else {
                    r
                };
                props.extend(properties(item).into_iter().map(|(k, (v, _))| (k, v)));
            }
            for (key, v) in props {
                match v.get("format") {
                    Some(Value::Object(fmt)) => f.add_inline(&key, fmt),
                    Some(Value::String(name)) if !seen_named.contains(name) => {
                        seen_named.push(name.clone());
                    }
                    _ => {}
                }
            }
        }
        f.merge_same();
        for (name, ty, source, keys) in named_formats() {
            if !seen_named.iter().any(|n| n == name) {
                continue;
            }
            let ty = match keys {
                NamedKeys::Keys(Value::Object(keys)) => {
                    f.types.push((
                        ty.to_owned(),
                        FormatType {
                            keys,
                            origin: format!("the named format `{name}`; keys from {source}"),
                        },
                    ));
                    ty.to_owned()
                }
                NamedKeys::Keys(_) => panic!("named format {name}: keys must be an object"),
                NamedKeys::SameAs(key) => {
                    let Some(t) = f.by_stem.get(stem(key)).cloned() else {
                        panic!("named format {name}: no spelled-out format for {key}");
                    };
                    assert_eq!(t, ty, "named format {name} is {key}'s format");
                    t
                }
            };
            f.by_name.insert(name.to_owned(), ty);
        }
        f
    }

    /// Adds a spelled-out format to its stem's type, merging keys (a key spelled two ways
    /// is a generator error).
    fn add_inline(&mut self, key: &str, fmt: &serde_json::Map<String, Value>) {
        let stem = stem(key);
        let name = format!("{}Property", camel(stem));
        self.by_stem.insert(stem.to_owned(), name.clone());
        if let Some((_, t)) = self.types.iter_mut().find(|(n, _)| *n == name) {
            for (k, v) in fmt {
                match t.keys.get(k) {
                    Some(old) if old != v => {
                        panic!("format {name}: key {k} is spelled two ways: {old} and {v}")
                    }
                    Some(_) => {}
                    None => {
                        t.keys.insert(k.clone(), v.clone());
                    }
                }
            }
            return;
        }
        self.types.push((
            name,
            FormatType {
                keys: fmt.clone(),
                origin: format!("the format the schema spells out for `{key}`"),
            },
        ));
    }

    /// Two stems whose merged formats have the same keys share the first one's type.
    fn merge_same(&mut self) {
        let mut i = 0;
        while i < self.types.len() {
            let (name, t) = &self.types[i];
            if let Some(first) = self.types[..i]
                .iter()
                .find(|(_, o)| o.keys == t.keys)
                .map(|(n, _)| n.clone())
            {
                let name = name.clone();
                for v in self.by_stem.values_mut() {
                    if *v == name {
                        v.clone_from(&first);
                    }
                }
                self.types.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// The Rust type of a property `key` with schema `v`, if it is a property string.
    fn type_for(&self, key: &str, v: &Value) -> Option<String> {
        match v.get("format")? {
            Value::Object(_) => self.by_stem.get(stem(key)).cloned(),
            Value::String(name) => self.by_name.get(name).cloned(),
            _ => None,
        }
    }

    /// The code of every format type.
    fn code(&self) -> String {
        let mut c = String::new();
        for (name, t) in &self.types {
            emit_format(&mut c, name, t);
        }
        c
    }
}

fn prop_field_type(v: &Value) -> &'static str {
    match v.get("type").and_then(Value::as_str) {
        Some("integer") => "i64",
        Some("number") => "f64",
        Some("boolean") => "bool",
        _ => "String",
    }
}

fn flag(v: &Value, attr: &str) -> bool {
    v.get(attr)
        .is_some_and(|d| d == 1 || d == true || d.as_str() == Some("1"))
}

/// One property-string type: the struct, `Display` (as PVE's `print_property_string`
/// writes: the default key bare, a `keyAlias` pair combined as `virtio=MAC`, then the
/// required keys and the rest, each sorted; unknown keys last in the order read) and
/// `FromStr` (as `parse_property_string` reads: the default key bare, aliases, a key given
/// twice refused; unknown keys kept).
fn emit_format(c: &mut String, name: &str, t: &FormatType) {
    let props = &t.keys;
    let mut fields: Vec<(&String, &Value)> = props
        .iter()
        .filter(|(_, v)| v.get("alias").is_none())
        .collect();
    fields.sort_by(|a, b| a.0.cmp(b.0));
    let default_key = fields
        .iter()
        .find(|(_, v)| flag(v, "default_key"))
        .map(|(k, _)| k.as_str());
    // keyAlias: `virtio=MAC` is model=virtio plus macaddr=MAC. Field -> (alias target, keys).
    let mut key_alias: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
    let mut aliases: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut alias_keys: Vec<(&String, &Value)> = props
        .iter()
        .filter(|(_, v)| v.get("alias").is_some())
        .collect();
    alias_keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in alias_keys {
        let Some(target) = v.get("alias").and_then(Value::as_str) else {
            continue;
        };
        match v.get("keyAlias").and_then(Value::as_str) {
            Some(field) => key_alias
                .entry(field)
                .or_insert_with(|| (target, Vec::new()))
                .1
                .push(k),
            None => aliases.entry(target).or_default().push(k),
        }
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|(k, v)| Some(k.as_str()) != default_key && !flag(v, "optional"))
        .map(|(k, _)| k.as_str())
        .collect();
    let optional: Vec<&str> = fields
        .iter()
        .filter(|(k, v)| Some(k.as_str()) != default_key && flag(v, "optional"))
        .map(|(k, _)| k.as_str())
        .collect();
    let combined_targets: Vec<&str> = key_alias.values().map(|(t, _)| *t).collect();
    // PVE writes `VALUE=TARGET` at the field's place: the target must come after it.
    let order: Vec<&str> = default_key
        .into_iter()
        .chain(required.iter().copied())
        .chain(optional.iter().copied())
        .collect();
    for (field, (target, _)) in &key_alias {
        let pos = |k: &str| order.iter().position(|o| *o == k);
        assert!(
            pos(field) < pos(target),
            "format {name}: keyAlias {field} must be written before {target}"
        );
    }

    let _ = writeln!(c, "/// A property string: {}.", t.origin);
    let _ = writeln!(c, "///");
    let _ = writeln!(
        c,
        "/// `Display` writes it as PVE writes it; `FromStr` reads what PVE answers (see"
    );
    let _ = writeln!(
        c,
        "/// [`crate::property_string`] for the rules and the quoting of values PVE cannot take)."
    );
    let _ = writeln!(c, "#[derive(Clone, Debug, Default, PartialEq)]");
    let _ = writeln!(c, "#[non_exhaustive]");
    let _ = writeln!(c, "pub struct {name} {{");
    for (k, v) in &fields {
        let mut doc = doc_line(v, &format!("`{k}`."));
        if Some(k.as_str()) == default_key {
            doc.push_str(" The default key (written without `key=`).");
        } else if !flag(v, "optional") {
            doc.push_str(" Required by PVE.");
        }
        if let Some((target, keys)) = key_alias.get(k.as_str()) {
            let _ = write!(
                doc,
                " With `{target}`, written `VALUE={}` for {}.",
                target.to_ascii_uppercase(),
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(a) = aliases.get(k.as_str()) {
            let _ = write!(
                doc,
                " Also read from {}.",
                a.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let _ = writeln!(c, "    /// {doc}");
        let _ = writeln!(c, "    pub {}: Option<{}>,", snake(k), prop_field_type(v));
    }
    let _ = writeln!(
        c,
        "    /// Keys the format does not list, in the order read (keys must not contain `,` or `=`)."
    );
    let _ = writeln!(c, "    pub other: Vec<(String, String)>,");
    let _ = writeln!(c, "}}\n");

    // Display.
    let _ = writeln!(c, "impl core::fmt::Display for {name} {{");
    let _ = writeln!(
        c,
        "    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{"
    );
    let _ = writeln!(c, "        let mut w = PropertyWriter::new(f);");
    let write_key = |c: &mut String, k: &str, bare: bool| {
        let f = snake(k);
        // The `{target}_combined` flag this key is skipped by, if any.
        let mut skip_if = None;
        if let Some((target, keys)) = key_alias.get(k) {
            let pats = keys
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(" | ");
            let t = snake(target);
            let _ = writeln!(
                c,
                "        let {t}_combined = match (&self.{f}, &self.{t}) {{\n            (Some(k), Some(v)) if matches!(k.as_str(), {pats}) => {{\n                w.pair(k, &v.prop_text())?;\n                true\n            }}\n            _ => false,\n        }};"
            );
            skip_if = Some(t);
        } else if combined_targets.contains(&k) {
            skip_if = Some(f.clone());
        }
        let call = if bare {
            "w.bare(&v.prop_text())".to_owned()
        } else {
            format!("w.pair({k:?}, &v.prop_text())")
        };
        match skip_if {
            Some(t) => {
                let _ = writeln!(
                    c,
                    "        if let (false, Some(v)) = ({t}_combined, &self.{f}) {{\n            {call}?;\n        }}"
                );
            }
            None => {
                let _ = writeln!(
                    c,
                    "        if let Some(v) = &self.{f} {{\n            {call}?;\n        }}"
                );
            }
        }
    };
    if let Some(d) = default_key {
        write_key(c, d, true);
    }
    for k in required.iter().chain(&optional) {
        write_key(c, k, false);
    }
    let _ = writeln!(
        c,
        "        for (k, v) in &self.other {{\n            w.pair(k, v)?;\n        }}\n        Ok(())\n    }}\n}}\n"
    );

    // FromStr.
    let _ = writeln!(c, "impl core::str::FromStr for {name} {{");
    let _ = writeln!(c, "    type Err = PropertyStringError;\n");
    let _ = writeln!(c, "    fn from_str(s: &str) -> Result<Self, Self::Err> {{");
    let _ = writeln!(c, "        let mut out = Self::default();");
    let _ = writeln!(c, "        for item in PropertyItems::new(s) {{");
    let _ = writeln!(c, "            let (key, value) = item?;");
    let _ = writeln!(c, "            let Some(key) = key else {{");
    match default_key {
        Some(d) => {
            let _ = writeln!(
                c,
                "                prop_set(&mut out.{}, {d:?}, &value)?;\n                continue;",
                snake(d)
            );
        }
        None => {
            let _ = writeln!(c, "                return Err(no_default_key(&value));");
        }
    }
    let _ = writeln!(c, "            }};");
    let _ = writeln!(c, "            match key {{");
    for (k, _) in &fields {
        let mut pats = vec![format!("{k:?}")];
        pats.extend(
            aliases
                .get(k.as_str())
                .into_iter()
                .flatten()
                .map(|a| format!("{a:?}")),
        );
        let _ = writeln!(
            c,
            "                {} => {{\n                    prop_set(&mut out.{}, {k:?}, &value)?;\n                }}",
            pats.join(" | "),
            snake(k)
        );
    }
    for (field, (target, keys)) in &key_alias {
        let pats = keys
            .iter()
            .map(|k| format!("{k:?}"))
            .collect::<Vec<_>>()
            .join(" | ");
        let _ = writeln!(
            c,
            "                {pats} => {{\n                    prop_set(&mut out.{}, {field:?}, key)?;\n                    prop_set(&mut out.{}, {target:?}, &value)?;\n                }}",
            snake(field),
            snake(target)
        );
    }
    let _ = writeln!(
        c,
        "                _ => out.other.push((key.to_owned(), value.into_owned())),"
    );
    let _ = writeln!(
        c,
        "            }}\n        }}\n        Ok(out)\n    }}\n}}\n"
    );
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

fn return_struct(out: &mut String, formats: &Formats, name: &str, schema: &Value) {
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
    let mut accessors = String::new();
    for (key, (v, _)) in properties(schema) {
        if let Some(prefix) = indexed(&key) {
            // `net0`, `net1`, ... arrive as their own keys: read from `other`.
            let (ty, parse) = match formats.type_for(&key, &v) {
                Some(t) => (format!("Result<{t}, PropertyStringError>"), "s.parse()"),
                None => ("String".to_owned(), "s.to_owned()"),
            };
            let _ = writeln!(
                accessors,
                "    /// The `{prefix}N` keys by index (the schema's `{key}`).\n    pub fn {}(&self) -> BTreeMap<u32, {ty}> {{\n        indexed(&self.other, \"{prefix}\").map(|(n, s)| (n, {parse})).collect()\n    }}\n",
                snake(prefix)
            );
            continue;
        }
        if let Some(t) = formats.type_for(&key, &v) {
            let _ = writeln!(
                accessors,
                "    /// `{key}` read as its property string.\n    pub fn {}_parsed(&self) -> Option<Result<{t}, PropertyStringError>> {{\n        self.{}.as_deref().map(str::parse)\n    }}\n",
                snake(&key).trim_start_matches("r#"),
                snake(&key)
            );
        }
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
    if !accessors.is_empty() {
        let _ = writeln!(out, "impl {name} {{\n{accessors}}}\n");
    }
}

/// The Rust type of a method's answer, defining item structs as needed.
fn return_type(out: &mut String, formats: &Formats, base: &str, returns: Option<&Value>) -> String {
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
            return_struct(out, formats, &name, r);
            name
        }
        Some("array") => match r.get("items") {
            Some(items) if has_props(items) => {
                let name = format!("{base}Item");
                return_struct(out, formats, &name, items);
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
    let formats = Formats::collect(schema);
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
        // An indexed key whose prefix is also a plain key (`numa` and `numa[n]`): `numa_n`.
        let plain: Vec<String> = query
            .iter()
            .filter(|(k, _)| indexed(k).is_none())
            .map(|(k, _)| snake(k))
            .collect();
        let map_field = |prefix: &str| {
            let f = snake(prefix);
            if plain.contains(&f) {
                format!("{f}_n")
            } else {
                f
            }
        };
        for (k, (v, opt)) in &query {
            let req = if *opt { "" } else { " Required." };
            let _ = writeln!(types, "    /// {}{req}", doc_line(v, &format!("`{k}`.")));
            let prop = formats.type_for(k, v);
            match (indexed(k), prop) {
                (Some(prefix), Some(t)) => {
                    let _ = writeln!(
                        types,
                        "    ///\n    /// Sent as `{prefix}N` for each index N."
                    );
                    let _ = writeln!(types, "    pub {}: BTreeMap<u32, {t}>,", map_field(prefix));
                }
                (Some(prefix), None) => {
                    let _ = writeln!(
                        types,
                        "    ///\n    /// Sent as `{prefix}N` for each index N."
                    );
                    let _ = writeln!(
                        types,
                        "    pub {}: BTreeMap<u32, String>,",
                        map_field(prefix)
                    );
                }
                (None, Some(t)) => {
                    let _ = writeln!(types, "    pub {}: Option<{t}>,", snake(k));
                }
                (None, None) => {
                    let _ = writeln!(types, "    pub {}: Option<{}>,", snake(k), param_type(v));
                }
            }
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
            if let Some(prefix) = indexed(k) {
                let _ = writeln!(
                    types,
                    "        for (n, v) in &self.{} {{\n            p.insert(&format!(\"{prefix}{{n}}\"), v.to_string());\n        }}",
                    map_field(prefix)
                );
                continue;
            }
            let f = snake(k);
            if formats.type_for(k, v).is_some() {
                let _ = writeln!(
                    types,
                    "        if let Some(v) = &self.{f} {{\n            p.insert(\"{k}\", v.to_string());\n        }}"
                );
            } else if param_type(v) == "Vec<String>" {
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
        let ret = return_type(&mut types, &formats, &base, m.info.get("returns"));
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
    let _ = writeln!(
        out,
        "pub use crate::property_string::{{PropValue, PropertyStringError}};"
    );
    let _ = writeln!(
        out,
        "use crate::property_string::{{PropertyItems, PropertyWriter, indexed, no_default_key, prop_set}};"
    );
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
    out.push_str(&formats.code());
    out.push_str(&types);
    let _ = writeln!(out, "#[cfg(feature = \"client\")]\nimpl Client {{");
    out.push_str(&calls);
    let _ = writeln!(out, "}}");
    out
}

/// Methods the generated test calls knowing fakepve 0.5.0 refuses them, with the refusal
/// asserted (the call reached the server and its error decoded): (method, path, the
/// expected error text, why). A path ending in `/` stands for every path under it.
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
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/agent/",
        "guest agent is not running",
        "the POSTs ran first, and POST .../agent/shutdown powered the guest off",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/",
        "not running",
        "POST .../snapshot/{snapname}/rollback ran first and stopped the VM (a snapshot without RAM)",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/template",
        "contains snapshots",
        "POST .../snapshot made one first",
    ),
    (
        "POST",
        "/nodes/{node}/qemu/{vmid}/migrate",
        "without --online",
        "a running VM; refused before any work (a second node would take VM 100 away)",
    ),
    (
        "GET",
        "/nodes/{node}/qemu/{vmid}/vncwebsocket",
        "invalid PVEVNC ticket",
        "a websocket upgrade with a ticket from POST .../vncproxy, not a plain GET",
    ),
    (
        "DELETE",
        "/nodes/{node}/qemu/{vmid}",
        "used in HA resources",
        "PVE refuses to remove an HA-managed VM without `purge`",
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
    // A new VM beside the test's VM 100; migrating to the node it is on (a refusal PVE
    // gives before any work: a second node would take VM 100 away from later calls).
    match (m.http, m.path, key) {
        ("POST", "/nodes/{node}/qemu", "vmid") => return Some("Some(101)".into()),
        (_, _, "newid") => return Some("Some(102)".into()),
        ("POST", "/nodes/{node}/qemu/{vmid}/migrate", "target") => {
            return Some("Some(\"pve1\".to_owned())".into());
        }
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize", "size") => {
            return Some("Some(\"+1G\".to_owned())".into());
        }
        (_, _, "cidr") => return Some("Some(\"10.0.0.0/24\".to_owned())".into()),
        (_, _, "action") if v.get("enum").is_none() => {
            return Some("Some(\"ACCEPT\".to_owned())".into());
        }
        _ => {}
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

/// A sample value of a required property-string parameter, as text.
fn prop_sample(ty: &str) -> Option<&'static str> {
    match ty {
        // remote_migrate's `target-endpoint`: a remote that is not there.
        "RemoteProperty" => Some(
            "host=127.0.0.1,apitoken=PVEAPIToken=gen@pve!gentoken=00000000-0000-0000-0000-000000000000",
        ),
        _ => None,
    }
}

/// Generates `tests/generated_calls.rs`: every generated method called against fakepve.
pub fn generate_test(schema: &Value) -> String {
    let formats = Formats::collect(schema);
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
        "    fake.cmd(serde_json::json!({{\"op\": \"add_vm\", \"vmid\": 100, \"name\": \"v100\", \"node\": \"pve1\", \"config\": {{\"memory\": 512, \"agent\": \"1\", \"ide0\": \"local-lvm:vm-100-disk-0,size=4G\"}}}})).await;"
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
            if pp.contains(k) || *opt || indexed(k).is_some() {
                continue;
            }
            if let Some(t) = formats.type_for(k, v) {
                if let Some(text) = prop_sample(&t) {
                    let _ = write!(fields, " p.{} = Some({text:?}.parse().unwrap());", snake(k));
                }
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
                "vmid" => "\"100\"".to_owned(),
                "pos" => "\"0\"".to_owned(),
                "cidr" => "\"10.0.0.0/24\"".to_owned(),
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
        let what = if path.ends_with('/') {
            format!("{http} {path}")
        } else {
            format!("{http} {path}: ")
        };
        let _ = writeln!(out, "        ({what:?}, {text:?}),");
    }
    let _ = writeln!(out, "    ];");
    let _ = writeln!(
        out,
        "    for (what, text) in expected {{\n        assert!(api.iter().any(|e| e.starts_with(what) && e.contains(text)), \"{{what}} not refused with {{text}}: {{api:#?}}\");\n    }}"
    );
    let _ = writeln!(
        out,
        "    assert!(api.iter().all(|e| e.contains(\"does not exist\") || expected.iter().any(|(w, t)| e.starts_with(w) && e.contains(t))), \"{{api:#?}}\");"
    );
    let _ = writeln!(
        out,
        "    assert!(ok as usize + api.len() == {}, \"{{ok}} ok, {{api:#?}}\");",
        ms.len()
    );
    let _ = writeln!(out, "}}");
    out
}
