//! Hand-written checks of Helm values against what each chart accepts at the pinned version.
//!
//! Helm validates values against a chart's `values.schema.json` and refuses the install when
//! they do not fit; charts without a schema silently ignore unknown keys, which is worse (a
//! renamed setting just stops working). These rules are written by hand from the upstream files
//! named on each [`ChartRules`] (no upstream file is copied): they cover the keys the renderers
//! emit, with the types upstream declares, and every object upstream closes
//! (`additionalProperties: false`) is closed here with upstream's full key list.
//!
//! ```
//! use hakube_addons::chart_schema::{self, rules_for};
//! let rules = rules_for("traefik").expect("Traefik has rules");
//! let bad = serde_json::json!({ "logs": { "access": { "enabled": true } } });
//! let problems = chart_schema::check(rules, &bad);
//! assert!(problems[0].contains("logs"));
//! ```

use serde_json::Value;

/// What a value must look like (a small subset of JSON Schema).
#[derive(Debug)]
pub enum Rule {
    /// Anything.
    Any,
    /// A string.
    Str,
    /// An integer (JSON Schema `integer`).
    Int,
    /// A boolean.
    Bool,
    /// A string out of a fixed list.
    Enum(&'static [&'static str]),
    /// `null` or the inner rule (JSON Schema `type: [x, "null"]`).
    Nullable(&'static Self),
    /// An array whose items follow the rule.
    Arr(&'static Self),
    /// An object. `keys` lists known keys; `rest` is what any other key must be: `None` means
    /// other keys are refused (`additionalProperties: false`), `Some(&Rule::Any)` allows them.
    Obj {
        /// Known keys.
        keys: &'static [(&'static str, Self)],
        /// Other keys.
        rest: Option<&'static Self>,
    },
}

/// An object open to other keys, checking the known ones.
const fn open(keys: &'static [(&'static str, Rule)]) -> Rule {
    Rule::Obj {
        keys,
        rest: Some(&Rule::Any),
    }
}

/// An object closed to other keys (`additionalProperties: false`).
const fn closed(keys: &'static [(&'static str, Rule)]) -> Rule {
    Rule::Obj { keys, rest: None }
}

/// The rules of one chart at one version, and where they come from.
#[derive(Debug)]
pub struct ChartRules {
    /// Chart name, as in [`crate::versions::Chart::name`].
    pub chart: &'static str,
    /// The chart version the rules were written against.
    pub version: &'static str,
    /// The upstream file(s) and tag the rules are written from.
    pub source: &'static str,
    /// The root rule.
    pub root: Rule,
}

/// Checks `value` against `rules`; every problem found, each naming the key path.
#[must_use]
pub fn check(rules: &ChartRules, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(&rules.root, value, "", &mut out);
    out
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

fn walk(rule: &Rule, v: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "(root)" } else { path };
    let mut wrong =
        |want: &str| out.push(format!("{at}: {} where {want} is required", type_name(v)));
    match rule {
        Rule::Any => {}
        Rule::Str => {
            if !v.is_string() {
                wrong("a string");
            }
        }
        Rule::Int => {
            if !(v.is_i64() || v.is_u64()) {
                wrong("an integer");
            }
        }
        Rule::Bool => {
            if !v.is_boolean() {
                wrong("a boolean");
            }
        }
        Rule::Enum(options) => match v.as_str() {
            Some(s) if options.contains(&s) => {}
            _ => out.push(format!("{at}: {v} is not one of {options:?}")),
        },
        Rule::Nullable(inner) => {
            if !v.is_null() {
                walk(inner, v, path, out);
            }
        }
        Rule::Arr(item) => match v.as_array() {
            Some(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(item, x, &format!("{path}[{i}]"), out);
                }
            }
            None => wrong("an array"),
        },
        Rule::Obj { keys, rest } => match v.as_object() {
            Some(map) => {
                for (k, x) in map {
                    let sub = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match keys.iter().find(|(name, _)| name == k) {
                        Some((_, r)) => walk(r, x, &sub, out),
                        None => match rest {
                            Some(r) => walk(r, x, &sub, out),
                            None => out.push(format!(
                                "{sub}: unknown key (the chart's schema allows no other keys here)"
                            )),
                        },
                    }
                }
            }
            None => wrong("an object"),
        },
    }
}

/// The rules for a chart by name, when hakube has written some.
#[must_use]
pub fn rules_for(chart: &str) -> Option<&'static ChartRules> {
    ALL.iter().copied().find(|r| r.chart == chart)
}

/// Every chart with rules.
pub const ALL: &[&ChartRules] = &[
    &TRAEFIK,
    &TIGERA_OPERATOR,
    &PROMETHEUS,
    &METRICS_SERVER,
    &GRAFANA,
    &LOKI,
    &ALLOY,
    &CERT_MANAGER,
    &KUBELET_CSR_APPROVER,
    &VAULT,
];

/// The key list of an object: `"name"` alone is any value, `"name" => rule` checks it. Used
/// with [`closed`] for upstream's full key list, with rules only where hakube sets values.
macro_rules! keys {
    ($($name:literal $(=> $rule:expr)?),* $(,)?) => {
        &[$(($name, keys!(@rule $($rule)?))),*]
    };
    (@rule) => { Rule::Any };
    (@rule $rule:expr) => { $rule };
}

// ---------------------------------------------------------------------------------------------
// Traefik: traefik/values.schema.json of traefik/traefik-helm-chart, tag v41.3.0. The root object
// and `ports.<name>` are closed there (additionalProperties: false), as are `providers`,
// `providers.kubernetesCRD` and `providers.kubernetesIngress`; the key lists below are
// upstream's complete lists for those objects.

const TRAEFIK_PORT_TLS: Rule = open(&[
    ("certResolver", Rule::Str),
    ("domains", Rule::Arr(&Rule::Any)),
    ("enabled", Rule::Bool),
    ("options", Rule::Str),
]);

const TRAEFIK_TRUSTED: Rule = open(&[
    ("insecure", Rule::Bool),
    ("trustedIPs", Rule::Arr(&Rule::Str)),
]);

/// `ports.<name>` (closed upstream).
const TRAEFIK_PORT: Rule = closed(&[
    ("allowACMEByPass", Rule::Bool),
    ("appProtocol", Rule::Nullable(&Rule::Str)),
    ("asDefault", Rule::Nullable(&Rule::Bool)),
    ("containerPort", Rule::Nullable(&Rule::Int)),
    ("expose", open(&[("default", Rule::Bool)])),
    ("exposedPort", Rule::Int),
    (
        "forwardedHeaders",
        open(&[
            ("insecure", Rule::Bool),
            ("notAppendXForwardedFor", Rule::Bool),
            ("trustedIPs", Rule::Arr(&Rule::Str)),
        ]),
    ),
    ("hostIP", Rule::Nullable(&Rule::Str)),
    ("hostPort", Rule::Nullable(&Rule::Int)),
    (
        "http",
        open(&[
            ("tls", TRAEFIK_PORT_TLS),
            ("middlewares", Rule::Nullable(&Rule::Arr(&Rule::Any))),
            ("redirections", open(&[("entryPoint", open(&[]))])),
            ("sanitizePath", Rule::Nullable(&Rule::Bool)),
        ]),
    ),
    ("http3", open(&[("enabled", Rule::Bool)])),
    ("nodePort", Rule::Nullable(&Rule::Int)),
    (
        "observability",
        closed(&[
            ("accessLogs", Rule::Nullable(&Rule::Bool)),
            ("metrics", Rule::Nullable(&Rule::Bool)),
            (
                "traceVerbosity",
                Rule::Nullable(&Rule::Enum(&["minimal", "detailed"])),
            ),
            ("tracing", Rule::Nullable(&Rule::Bool)),
        ]),
    ),
    ("port", Rule::Int),
    ("protocol", Rule::Str),
    ("proxyProtocol", TRAEFIK_TRUSTED),
    ("targetPort", Rule::Any),
    ("transport", open(&[])),
    ("uplink", Rule::Nullable(&Rule::Bool)),
]);

/// The Traefik chart, 41.3.0.
pub const TRAEFIK: ChartRules = ChartRules {
    chart: "traefik",
    version: "41.3.0",
    source: "traefik/values.schema.json in traefik/traefik-helm-chart, tag v41.3.0",
    root: closed(&[
        (
            "accessLog",
            open(&[
                ("enabled", Rule::Bool),
                (
                    "format",
                    Rule::Nullable(&Rule::Enum(&["common", "genericCLF", "json"])),
                ),
            ]),
        ),
        ("additionalArguments", Rule::Arr(&Rule::Str)),
        ("additionalVolumeMounts", Rule::Arr(&Rule::Any)),
        ("affinity", open(&[])),
        ("api", Rule::Any),
        ("autoscaling", Rule::Any),
        ("certificatesResolvers", Rule::Any),
        ("commonLabels", open(&[])),
        ("core", Rule::Any),
        (
            "deployment",
            open(&[
                ("enabled", Rule::Bool),
                ("kind", Rule::Str),
                ("replicas", Rule::Nullable(&Rule::Int)),
            ]),
        ),
        ("enabled", Rule::Bool),
        ("env", Rule::Arr(&Rule::Any)),
        ("envFrom", Rule::Arr(&Rule::Any)),
        ("experimental", Rule::Any),
        ("extraObjects", Rule::Arr(&Rule::Any)),
        ("fullnameOverride", Rule::Any),
        ("gateway", Rule::Any),
        ("gatewayClass", Rule::Any),
        ("global", Rule::Any),
        ("hostNetwork", Rule::Bool),
        ("hub", Rule::Any),
        ("image", Rule::Any),
        ("ingressClass", Rule::Any),
        (
            "ingressRoute",
            open(&[
                ("dashboard", open(&[("enabled", Rule::Bool)])),
                ("healthcheck", open(&[("enabled", Rule::Bool)])),
            ]),
        ),
        ("instanceLabelOverride", Rule::Any),
        ("livenessProbe", Rule::Any),
        (
            "log",
            open(&[
                ("format", Rule::Nullable(&Rule::Enum(&["common", "json"]))),
                (
                    "level",
                    Rule::Enum(&["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"]),
                ),
            ]),
        ),
        (
            "metrics",
            open(&[("prometheus", open(&[("entryPoint", Rule::Str)]))]),
        ),
        ("nameOverride", Rule::Any),
        ("namespaceOverride", Rule::Any),
        ("nodeSelector", open(&[])),
        ("oci_meta", Rule::Any),
        ("ocsp", Rule::Any),
        ("offering_version", Rule::Any),
        ("persistence", Rule::Any),
        ("podDisruptionBudget", Rule::Any),
        ("podSecurityContext", Rule::Any),
        (
            "ports",
            Rule::Obj {
                keys: &[],
                rest: Some(&TRAEFIK_PORT),
            },
        ),
        ("priorityClassName", Rule::Any),
        (
            "providers",
            closed(&[
                (
                    "kubernetesCRD",
                    closed(&[
                        ("allowCrossNamespace", Rule::Bool),
                        ("allowEmptyServices", Rule::Bool),
                        ("allowExternalNameServices", Rule::Bool),
                        ("crossProviderNamespaces", Rule::Any),
                        ("defaultTLSResourcesNamespace", Rule::Any),
                        ("enabled", Rule::Bool),
                        ("ingressClass", Rule::Any),
                        ("labelSelector", Rule::Any),
                        ("namespaces", Rule::Arr(&Rule::Str)),
                        ("nativeLBByDefault", Rule::Bool),
                        ("safeNaming", Rule::Any),
                    ]),
                ),
                (
                    "kubernetesIngress",
                    closed(&[
                        ("allowEmptyServices", Rule::Bool),
                        ("allowExternalNameServices", Rule::Bool),
                        ("crossProviderNamespaces", Rule::Any),
                        ("disableIngressClassLookup", Rule::Bool),
                        ("enabled", Rule::Bool),
                        ("ingressClass", Rule::Any),
                        ("ingressEndpoint", Rule::Any),
                        ("labelSelector", Rule::Any),
                        ("namespaces", Rule::Arr(&Rule::Str)),
                        ("nativeLBByDefault", Rule::Bool),
                        ("publishedService", Rule::Any),
                        ("strictPrefixMatching", Rule::Bool),
                    ]),
                ),
                ("file", Rule::Any),
                ("knative", Rule::Any),
                ("kubernetesGateway", Rule::Any),
                ("kubernetesIngressNGINX", Rule::Any),
                ("precedence", Rule::Any),
            ]),
        ),
        ("rbac", Rule::Any),
        ("readinessProbe", Rule::Any),
        ("resources", Rule::Any),
        ("securityContext", Rule::Any),
        (
            "service",
            open(&[
                ("enabled", Rule::Bool),
                ("annotations", open(&[])),
                ("labels", open(&[])),
                ("single", Rule::Bool),
                ("spec", open(&[("type", Rule::Str)])),
            ]),
        ),
        ("serviceAccount", Rule::Any),
        ("serviceAccountAnnotations", Rule::Any),
        ("startupProbe", Rule::Any),
        ("tlsOptions", Rule::Any),
        ("tlsStore", open(&[])),
        ("tolerations", Rule::Arr(&Rule::Any)),
        ("topologySpreadConstraints", Rule::Arr(&Rule::Any)),
        ("tracing", Rule::Any),
        ("updateStrategy", Rule::Any),
        ("versionOverride", Rule::Any),
        ("volumes", Rule::Arr(&Rule::Any)),
    ]),
};

// ---------------------------------------------------------------------------------------------
// Charts without a values.schema.json: Helm refuses nothing, and the templates read only the
// keys of the chart's values.yaml, so a misspelled or renamed key is silently ignored. The
// root (and the objects below) is closed here with the complete top-level key list of that
// values.yaml at the pinned tag.

/// tigera-operator v3.32.1: charts/tigera-operator/values.yaml in projectcalico/calico, tag
/// v3.32.1 (no values.schema.json).
pub const TIGERA_OPERATOR: ChartRules = ChartRules {
    chart: "tigera-operator",
    version: "v3.32.1",
    source: "charts/tigera-operator/values.yaml in projectcalico/calico, tag v3.32.1 (no schema)",
    root: closed(keys![
        "additionalLabels", "affinity",
        "apiServer" => open(&[("enabled", Rule::Bool)]),
        "calicoctl", "certs", "defaultFelixConfiguration", "dnsConfig", "goldmane",
        "imagePullSecrets",
        "installation" => open(&[("enabled", Rule::Bool)]),
        "kubernetesServiceEndpoint" => closed(&[("host", Rule::Str), ("port", Rule::Str)]),
        "manageCRDs", "nodeSelector", "podAnnotations", "podLabels", "priorityClassName",
        "resources", "tigeraOperator",
        "tolerations" => Rule::Arr(&Rule::Any),
        "whisker",
    ]),
};

/// metrics-server chart 3.13.1: charts/metrics-server/values.yaml in kubernetes-sigs/metrics-server,
/// tag metrics-server-helm-chart-3.13.1 (no values.schema.json).
pub const METRICS_SERVER: ChartRules = ChartRules {
    chart: "metrics-server",
    version: "3.13.1",
    source: "charts/metrics-server/values.yaml in kubernetes-sigs/metrics-server, tag metrics-server-helm-chart-3.13.1 (no schema)",
    root: closed(keys![
        "addonResizer", "affinity", "apiService",
        "args" => Rule::Arr(&Rule::Str),
        "commonLabels", "containerPort", "defaultArgs", "deploymentAnnotations", "dnsConfig",
        "extraVolumeMounts", "extraVolumes", "fullnameOverride", "hostNetwork", "image",
        "imagePullSecrets", "livenessProbe", "metrics", "nameOverride", "nodeSelector",
        "podAnnotations", "podDisruptionBudget", "podLabels", "podSecurityContext",
        "priorityClassName", "rbac", "readinessProbe", "replicas", "resources",
        "revisionHistoryLimit", "schedulerName", "securityContext", "service", "serviceAccount",
        "serviceMonitor", "tls", "tmpVolume",
        "tolerations" => Rule::Arr(&Rule::Any),
        "topologySpreadConstraints", "updateStrategy",
    ]),
};

/// Grafana chart 12.11.1: charts/grafana/values.yaml in grafana-community/helm-charts, tag
/// grafana-12.11.1 (no values.schema.json).
pub const GRAFANA: ChartRules = ChartRules {
    chart: "grafana",
    version: "12.11.1",
    source: "charts/grafana/values.yaml in grafana-community/helm-charts, tag grafana-12.11.1 (no schema)",
    root: closed(keys![
        "admin" => closed(&[
            ("existingSecret", Rule::Str),
            ("passwordKey", Rule::Str),
            ("userKey", Rule::Str),
        ]),
        "adminUser", "affinity", "alerting", "assertNoLeakedSecrets",
        "automountServiceAccountToken", "autoscaling", "containerSecurityContext",
        "createConfigmap", "dashboardProviders", "dashboards", "dashboardsConfigMaps",
        "datasources" => open(&[]),
        "defaultCurlOptions", "deploymentStrategy", "dnsConfig", "dnsPolicy",
        "downloadDashboards", "downloadDashboardsImage", "enableKubeBackwardCompatibility",
        "enableServiceLinks", "env", "envFromConfigMaps", "envFromSecret", "envFromSecrets",
        "envRenderSecret", "envValueFrom", "extraConfigmapMounts", "extraContainerVolumes",
        "extraContainers", "extraEmptyDirMounts", "extraExposePorts", "extraInitContainers",
        "extraLabels", "extraObjects", "extraSecretMounts", "extraVolumeMounts", "extraVolumes",
        "global", "gossipPortName", "grafana.ini", "headlessService", "hostAliases", "hostUsers",
        "image", "imageRenderer", "ingress", "initChownData", "ldap", "lifecycleHooks",
        "listenerSet", "livenessProbe", "namespaceOverride", "networkPolicy", "nodeSelector",
        "notifiers",
        "persistence" => closed(&[
            ("accessModes", Rule::Arr(&Rule::Str)),
            ("disableWarning", Rule::Bool),
            ("enabled", Rule::Bool),
            ("extraPvcLabels", Rule::Any),
            ("finalizers", Rule::Any),
            ("inMemory", Rule::Any),
            ("lookupVolumeName", Rule::Any),
            ("persistentVolumeClaimRetentionPolicy", Rule::Any),
            ("size", Rule::Str),
            ("storageClassName", Rule::Str),
            ("type", Rule::Str),
            ("volumeName", Rule::Str),
        ]),
        "plugins", "podDisruptionBudget", "podPortName", "progressDeadlineSeconds", "rbac",
        "readinessProbe", "replicas", "resources", "revisionHistoryLimit", "route",
        "securityContext", "service", "serviceAccount", "serviceMonitor",
        "shadowBundledPlugins", "shareProcessNamespace", "sidecar", "smtp", "startupProbe",
        "testFramework",
        "tolerations" => Rule::Arr(&Rule::Any),
        "topologySpreadConstraints", "useStatefulSet", "verticalPodAutoscaler",
    ]),
};

/// Grafana Alloy chart 1.11.1: operations/helm/charts/alloy/values.yaml in grafana/alloy, tag
/// helm-chart/1.11.1 (no values.schema.json).
pub const ALLOY: ChartRules = ChartRules {
    chart: "alloy",
    version: "1.11.1",
    source: "operations/helm/charts/alloy/values.yaml in grafana/alloy, tag helm-chart/1.11.1 (no schema)",
    root: closed(keys![
        "alloy" => closed(keys![
            "clustering", "command",
            "configMap" => closed(&[
                ("content", Rule::Str),
                ("create", Rule::Bool),
                ("key", Rule::Nullable(&Rule::Str)),
                ("name", Rule::Nullable(&Rule::Str)),
            ]),
            "enableHttpServerPort", "enableReporting", "envFrom", "extraArgs",
            "extraEnv" => Rule::Arr(&Rule::Any),
            "extraPorts", "hostAliases", "initialDelaySeconds", "lifecycle", "listenAddr",
            "listenPort", "listenScheme", "livenessProbe",
            "mounts" => closed(&[
                ("dockercontainers", Rule::Bool),
                ("extra", Rule::Arr(&Rule::Any)),
                ("varlog", Rule::Bool),
            ]),
            "resources", "securityContext", "stabilityLevel", "storagePath", "timeoutSeconds",
            "uiPathPrefix",
        ]),
        "configReloader",
        "controller" => closed(keys![
            "affinity", "autoscaling", "dnsPolicy", "enableStatefulSetAutoDeletePVC",
            "extraAnnotations", "extraContainers", "extraLabels", "hostNetwork", "hostPID",
            "initContainers", "minReadySeconds", "nodeSelector", "parallelRollout",
            "podAnnotations", "podDisruptionBudget", "podLabels", "priorityClassName", "replicas",
            "revisionHistoryLimit", "terminationGracePeriodSeconds",
            "tolerations" => Rule::Arr(&Rule::Any),
            "topologySpreadConstraints",
            "type" => Rule::Enum(&["daemonset", "deployment", "statefulset"]),
            "updateStrategy", "volumeClaimTemplates", "volumes",
        ]),
        "crds", "extraObjects", "fullnameOverride", "global", "image", "ingress", "nameOverride",
        "namespaceOverride", "networkPolicy", "rbac", "service", "serviceAccount",
        "serviceMonitor",
    ]),
};

/// hashicorp/vault chart 0.34.1 (in-cluster Vault): values.schema.json and values.yaml in
/// hashicorp/vault-helm, tag v0.34.1. The schema closes no object; the root, `server`, `ui`,
/// `server.ha`, `server.ha.raft` and `server.dataStorage` are closed here with the schema's
/// complete `properties` (plus `server.preStop`, which values.yaml has beyond the schema): the
/// templates read no other key. Types as the schema declares them (`["boolean", "string"]`
/// is any value here).
pub const VAULT: ChartRules = ChartRules {
    chart: "vault",
    version: "0.34.1",
    source: "values.schema.json and values.yaml in hashicorp/vault-helm, tag v0.34.1",
    root: closed(keys![
        "csi",
        "global" => closed(keys![
            "enabled" => Rule::Bool,
            "externalVaultAddr", "imagePullSecrets", "namespace", "openshift", "psp",
            "serverTelemetry",
            "tlsDisable" => Rule::Bool,
        ]),
        "injector" => open(keys!["enabled"]),
        "server" => closed(keys![
            "affinity", "annotations", "auditStorage", "authDelegator",
            "dataStorage" => closed(keys![
                "accessMode", "annotations", "enabled", "labels", "mountPath",
                "size" => Rule::Str,
                "storageClass" => Rule::Nullable(&Rule::Str),
            ]),
            "dev", "enabled", "enterpriseLicense", "extraArgs", "extraContainers",
            "extraEnvironmentVars" => open(&[]),
            "extraInitContainers", "extraLabels", "extraPorts", "extraSecretEnvironmentVars",
            "extraVolumes",
            "ha" => closed(keys![
                "apiAddr", "clusterAddr", "config", "disruptionBudget",
                "enabled" => Rule::Bool,
                "raft" => closed(keys![
                    "config",
                    "enabled" => Rule::Bool,
                    "redundancyZones",
                    "setNodeId" => Rule::Bool,
                ]),
                "replicas" => Rule::Int,
            ]),
            "hostAliases", "hostNetwork", "httproute", "image", "includeConfigAnnotation",
            "ingress", "livenessProbe", "logFormat", "logLevel", "networkPolicy", "nodeSelector",
            "persistentVolumeClaimRetentionPolicy", "postStart", "preStop",
            "preStopSleepSeconds", "priorityClassName", "readinessProbe", "resources", "route",
            "service", "serviceAccount", "serviceCA", "shareProcessNamespace", "standalone",
            "statefulSet", "terminationGracePeriodSeconds", "tolerations",
            "topologySpreadConstraints",
            // The StatefulSet's `updateStrategy.type` (templates/server-statefulset.yaml).
            "updateStrategyType" => Rule::Enum(&["OnDelete", "RollingUpdate"]),
            "volumeMounts" => Rule::Nullable(&Rule::Arr(&Rule::Any)),
            "volumes" => Rule::Nullable(&Rule::Arr(&Rule::Any)),
        ]),
        "serverTelemetry",
        "ui" => closed(keys![
            "activeVaultPodOnly", "annotations", "enabled", "externalPort",
            "externalTrafficPolicy", "publishNotReadyAddresses", "serviceIPFamilies",
            "serviceIPFamilyPolicy", "serviceNodePort", "serviceType", "targetPort",
        ]),
    ]),
};

/// kubelet-csr-approver chart 1.2.14: charts/kubelet-csr-approver/values.yaml in
/// postfinance/kubelet-csr-approver, tag v1.2.14 (no values.schema.json).
pub const KUBELET_CSR_APPROVER: ChartRules = ChartRules {
    chart: "kubelet-csr-approver",
    version: "1.2.14",
    source: "charts/kubelet-csr-approver/values.yaml in postfinance/kubelet-csr-approver, tag v1.2.14 (no schema)",
    root: closed(keys![
        "affinity", "allowedDnsNames",
        "bypassDnsResolution" => Rule::Bool,
        "bypassHostnameCheck", "dnsConfig", "dnsPolicy", "env", "extraObjects",
        "fullnameOverride", "global", "ignoreNonSystemNode", "image", "imagePullSecrets",
        "leaderElection", "loggingLevel", "maxExpirationSeconds", "metrics", "nameOverride",
        "namespace", "nodeSelector", "podAnnotations", "podLabels", "podSecurityContext",
        "priorityClassName",
        "providerIpPrefixes" => Rule::Arr(&Rule::Str),
        "providerRegex" => Rule::Str,
        "rbac", "replicas", "resources", "securityContext", "serviceAccount", "skipDenyStep",
        "tolerations" => Rule::Arr(&Rule::Any),
    ]),
};

// ---------------------------------------------------------------------------------------------
// Charts with a values.schema.json whose root is open: the keys listed are the schema's
// complete `properties` (equal to the values.yaml top-level keys, plus the two the prometheus
// values.yaml has beyond its schema); the templates read no other, so the root is closed here.

/// Prometheus chart 29.27.0: charts/prometheus/values.schema.json and values.yaml in
/// prometheus-community/helm-charts, tag prometheus-29.27.0.
pub const PROMETHEUS: ChartRules = ChartRules {
    chart: "prometheus",
    version: "29.27.0",
    source: "charts/prometheus/values.schema.json and values.yaml in prometheus-community/helm-charts, tag prometheus-29.27.0",
    root: closed(keys![
        "alertRelabelConfigs",
        "alertmanager" => open(&[("enabled", Rule::Bool)]),
        "commonMetaLabels", "configmapReload", "extraManifests",
        "extraScrapeConfigs" => Rule::Str,
        "forceNamespace", "imagePullSecrets",
        "kube-state-metrics" => open(&[("enabled", Rule::Bool)]),
        "networkPolicy",
        "prometheus-node-exporter" => open(&[
            ("enabled", Rule::Bool),
            ("tolerations", Rule::Arr(&Rule::Any)),
        ]),
        "prometheus-pushgateway" => open(&[("enabled", Rule::Bool)]),
        "rbac", "ruleFiles", "scrapeConfigFiles", "scrapeConfigs",
        "server" => open(&[
            ("replicaCount", Rule::Int),
            ("retention", Rule::Str),
            // The schema lists these keys; `storageClass` is read by templates/pvc.yaml.
            ("persistentVolume", closed(&[
                ("accessModes", Rule::Arr(&Rule::Str)),
                ("annotations", open(&[])),
                ("enabled", Rule::Bool),
                ("existingClaim", Rule::Str),
                ("labels", open(&[])),
                ("mountPath", Rule::Str),
                ("size", Rule::Str),
                ("statefulSetNameOverride", Rule::Str),
                ("storageClass", Rule::Str),
                ("subPath", Rule::Str),
            ])),
        ]),
        "serverFiles", "serviceAccounts",
    ]),
};

/// Loki chart 18.11.0: charts/loki/values.schema.json in grafana-community/helm-charts, tag
/// loki-18.11.0.
pub const LOKI: ChartRules = ChartRules {
    chart: "loki",
    version: "18.11.0",
    source: "charts/loki/values.schema.json in grafana-community/helm-charts, tag loki-18.11.0",
    root: closed(keys![
        "backend" => open(&[("replicas", Rule::Int)]),
        "bloomBuilder", "bloomGateway", "bloomPlanner",
        "chunksCache" => open(&[("enabled", Rule::Bool)]),
        "commonLabels", "compactor", "defaults",
        "deploymentMode" => Rule::Str,
        "distributor", "extraObjects", "fullnameOverride",
        "gateway" => open(&[("enabled", Rule::Bool)]),
        "global", "ignoreMinioDeprecation", "imagePullSecrets", "indexGateway", "ingester",
        "ingress", "kubeVersionOverride",
        "loki" => open(&[
            ("auth_enabled", Rule::Bool),
            ("commonConfig", open(&[])),
            ("compactor", open(&[])),
            ("limits_config", open(&[])),
            ("schemaConfig", open(&[])),
            ("storage", open(&[])),
        ]),
        "lokiCanary" => open(&[("enabled", Rule::Bool)]),
        "memberlist", "memcached", "memcachedExporter", "migrate",
        "minio" => open(&[("enabled", Rule::Bool)]),
        "monitoring", "nameOverride", "namespaceOverride", "networkPolicy", "overridesExporter",
        "patternIngester", "podDisruptionBudget", "querier", "queryFrontend", "queryScheduler",
        "rbac",
        "read" => open(&[("replicas", Rule::Int)]),
        "resultsCache" => open(&[("enabled", Rule::Bool)]),
        "rollout_operator", "route", "ruler", "serviceAccount", "sidecar",
        "singleBinary" => open(&[
            ("replicas", Rule::Int),
            ("tolerations", Rule::Arr(&Rule::Any)),
            ("persistence", open(&[
                ("enabled", Rule::Bool),
                ("size", Rule::Str),
                ("storageClass", Rule::Nullable(&Rule::Str)),
            ])),
        ]),
        "tableManager",
        "test" => open(&[("enabled", Rule::Bool)]),
        "write" => open(&[("replicas", Rule::Int)]),
    ]),
};

/// cert-manager chart v1.21.1: deploy/charts/cert-manager/values.schema.json in
/// cert-manager/cert-manager, tag v1.21.1 (the root, `crds` and `prometheus` are closed there).
pub const CERT_MANAGER: ChartRules = ChartRules {
    chart: "cert-manager",
    version: "v1.21.1",
    source: "deploy/charts/cert-manager/values.schema.json in cert-manager/cert-manager, tag v1.21.1",
    root: closed(keys![
        "acmesolver", "affinity", "approveSignerNames", "automountServiceAccountToken",
        "cainjector", "clusterResourceNamespace", "config", "containerSecurityContext",
        "crds" => closed(&[("enabled", Rule::Bool), ("keep", Rule::Bool)]),
        "creator", "deploymentAnnotations", "disableAutoApproval", "dns01RecursiveNameservers",
        "dns01RecursiveNameserversOnly", "enableCertificateOwnerRef", "enableServiceLinks",
        "enabled", "extraArgs", "extraContainers", "extraEnv", "extraObjects", "featureGates",
        "fullnameOverride", "global", "hostAliases", "http_proxy", "https_proxy", "image",
        "imageNamespace", "imageRegistry", "ingressShim", "installCRDs", "livenessProbe",
        "maxConcurrentChallenges", "nameOverride", "namespace", "networkPolicy", "no_proxy",
        "nodeSelector", "podAnnotations", "podDisruptionBudget", "podDnsConfig",
        "podDnsPolicy", "podLabels",
        "prometheus" => closed(&[
            ("enabled", Rule::Bool),
            ("podmonitor", open(&[])),
            ("servicemonitor", open(&[])),
        ]),
        "replicaCount", "resources", "runtimeClassName", "securityContext", "serviceAccount",
        "serviceAnnotations", "serviceIPFamilies", "serviceIPFamilyPolicy", "serviceLabels",
        "startupapicheck", "strategy", "tolerations", "topologySpreadConstraints",
        "volumeMounts", "volumes", "webhook",
    ]),
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_v40_keys_the_seed_rendered_are_refused_with_their_path() {
        let old = json!({
            "logs": { "access": { "enabled": true } },
            "ports": { "websecure": { "port": 8443, "tls": { "enabled": true } } },
            "service": { "spec": { "type": "NodePort" } },
        });
        let problems = check(&TRAEFIK, &old);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("logs: unknown key")));
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("ports.websecure.tls: unknown key"))
        );
    }

    #[test]
    fn types_are_checked_where_upstream_declares_them() {
        let v = json!({ "ports": { "web": { "nodePort": "30080" } }, "accessLog": { "enabled": "yes" } });
        let problems = check(&TRAEFIK, &v);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("ports.web.nodePort: string"))
        );
    }

    #[test]
    fn every_pinned_chart_with_rules_is_pinned_at_the_ruled_version() {
        for r in ALL {
            let pinned = crate::versions::ALL
                .iter()
                .find(|c| c.name == r.chart)
                .map(|c| c.version.as_ref())
                .or((r.chart == "kubelet-csr-approver")
                    .then_some(crate::versions::KUBELET_CSR_APPROVER_VERSION))
                .unwrap_or_else(|| panic!("rules for {} but no pinned chart", r.chart));
            assert_eq!(
                pinned, r.version,
                "{}: re-check the rules against {} before moving the pin",
                r.chart, r.source
            );
        }
    }
}
