//! Every decoder, fed arbitrary bytes and arbitrary JSON (also shaped like the answers it
//! expects, with hostile values at the known keys), returns a value or an error: never a
//! panic. Runs without the `client` feature too.

#![allow(clippy::unwrap_used, reason = "proptest's macros and test helpers")]

use hakube_proxmox_api::{
    ClusterStatusEntry, ExecStatus, Fingerprint, GuestInterface, HaGroup, HaResource, HaRule,
    NodeInfo, PendingEntry, PoolInfo, QemuListEntry, Resource, StorageInfo, TaskListEntry,
    TaskLogLine, TaskStatus, Upid, VersionInfo, VmConfig, VmStatus, cloudinit, decode,
    parse_envelope, parse_error, parse_size, primary_address, split_tags, unwrap_envelope,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys PVE answers carry, so that objects hit the typed fields.
const KEYS: &[&str] = &[
    "data",
    "total",
    "message",
    "errors",
    "vmid",
    "name",
    "node",
    "status",
    "type",
    "id",
    "template",
    "maxdisk",
    "maxmem",
    "mem",
    "cpu",
    "uptime",
    "tags",
    "lock",
    "pool",
    "hastate",
    "exitstatus",
    "upid",
    "n",
    "t",
    "starttime",
    "endtime",
    "pid",
    "version",
    "release",
    "repoid",
    "ssl_fingerprint",
    "level",
    "online",
    "local",
    "nodeid",
    "ip",
    "quorate",
    "sid",
    "state",
    "group",
    "rule",
    "resources",
    "nodes",
    "affinity",
    "strict",
    "key",
    "value",
    "pending",
    "delete",
    "ip-addresses",
    "ip-address",
    "ip-address-type",
    "prefix",
    "hardware-address",
    "result",
    "exited",
    "exitcode",
    "out-data",
    "err-data",
    "signal",
    "storage",
    "shared",
    "content",
    "active",
    "avail",
    "poolid",
    "comment",
    "ha",
    "managed",
    "agent",
    "qmpstatus",
    "scsi0",
    "net0",
    "ipconfig0",
    "digest",
    "NeedTFA",
    "ticket",
];

/// Leaves that PVE's loose typing (and a broken proxy) can produce.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("1e400".to_owned()),
            Just("-1".to_owned()),
            Just("3.4359738368e10".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("UPID:pve:0000B862:000017AC:5FBE5ADE:qmclone:100:root@pam:".to_owned()),
            Just("UPID:::::::::".to_owned()),
            Just("local-lvm:vm-100-disk-0,size=32G".to_owned()),
            Just("size=99999999999999999999T".to_owned()),
            Just("fe80::1".to_owned()),
            Just("".to_owned()),
            ".{0,40}",
            "[0-9]{1,25}(\\.[0-9]{0,5})?[KMGT]?",
        ]
        .prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..10).prop_map(
                |kv| Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>()
                )
            ),
            prop::collection::vec((".{0,8}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Decodes `v` as every answer type, as one item and as a list.
fn decode_all(v: &Value) {
    macro_rules! each {
        ($($t:ty),* $(,)?) => {$(
            let _ = decode::<$t>(v.clone());
            let _ = decode::<Vec<$t>>(v.clone());
            let _ = decode::<Option<$t>>(v.clone());
        )*};
    }
    each!(
        VersionInfo,
        NodeInfo,
        Resource,
        ClusterStatusEntry,
        VmStatus,
        VmConfig,
        QemuListEntry,
        StorageInfo,
        PoolInfo,
        HaResource,
        HaRule,
        HaGroup,
        PendingEntry,
        GuestInterface,
        TaskStatus,
        TaskLogLine,
        TaskListEntry,
        ExecStatus,
        Upid,
        u32,
        u64,
        String,
        (),
    );
    if let Ok(cfg) = decode::<VmConfig>(v.clone()) {
        for key in [
            "scsi0", "virtio0", "net0", "tags", "memory", "digest", "agent",
        ] {
            let _ = cfg.get_str(key);
            let _ = cfg.get_u64(key);
            let _ = cfg.disk_size(key);
        }
        let _ = cfg.tags();
        let _ = cfg.digest();
    }
    if let Ok(ifs) = decode::<Vec<GuestInterface>>(v.clone()) {
        let _ = primary_address(&ifs);
    }
    if let Ok(rs) = decode::<Vec<Resource>>(v.clone()) {
        for r in rs {
            let _ = r.tag_list();
        }
    }
    #[cfg(feature = "provision")]
    plan_with_observed(v);
}

/// The planner reading an arbitrary observed config must not panic either.
#[cfg(feature = "provision")]
fn plan_with_observed(v: &Value) {
    use hakube_proxmox_api::provision::{
        ClusterState, ObservedVm, ProvisionOptions, VmSpec, plan_cluster,
    };
    let Ok(config) = decode::<VmConfig>(v.clone()) else {
        return;
    };
    let mut state = ClusterState::default();
    state.nodes.insert("pve1".into(), "online".into());
    let tags = config.tags();
    for (vmid, template) in [(9000, true), (201, false)] {
        state.vms.insert(
            vmid,
            ObservedVm {
                vmid,
                kind: "qemu".into(),
                node: "pve1".into(),
                name: "x".into(),
                status: "stopped".into(),
                template,
                tags: tags.clone(),
                config: Some(config.clone()),
                ..ObservedVm::default()
            },
        );
    }
    let spec = VmSpec::new("k8s-m1", "pve1", 201, 9000);
    let _ = plan_cluster(&[spec], &state, &ProvisionOptions::new("t"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..300), reason in ".{0,40}") {
        let _ = parse_envelope(&body);
        let _ = unwrap_envelope(&body);
        let e = parse_error(&reason, &body);
        if serde_json::from_slice::<Value>(&body).is_err() {
            // Not JSON (a proxy's page, a cut answer): the reason phrase is the message.
            prop_assert_eq!(e.message.as_str(), reason.trim());
        }
        let text = String::from_utf8_lossy(&body);
        let _ = text.parse::<Upid>();
        let _ = text.parse::<Fingerprint>();
        let _ = parse_size(&text);
        let _ = split_tags(&text);
        let _ = cloudinit::decode_sshkeys(&text);
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            decode_all(&v);
        }
    }

    #[test]
    fn arbitrary_json(v in json()) {
        let body = serde_json::to_vec(&serde_json::json!({"data": v.clone(), "total": v.clone()})).unwrap();
        let env = parse_envelope(&body);
        prop_assert!(env.is_ok());
        let _ = parse_error("Parameter verification failed.", &serde_json::to_vec(&v).unwrap());
        decode_all(&v);
        if let Value::Object(map) = &v {
            for value in map.values() {
                decode_all(value);
            }
        }
    }

    #[test]
    fn upid_like_text(parts in prop::collection::vec("[0-9A-Fa-f:@!a-z]{0,10}", 0..12)) {
        let text = format!("UPID:{}", parts.join(":"));
        if let Ok(u) = text.parse::<Upid>() {
            // What parses prints back the same.
            prop_assert_eq!(u.as_str(), text.as_str());
        }
    }
}
