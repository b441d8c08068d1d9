//! Output parsers against text shaped like recorded real kubeadm/kubectl output (v1.23-v1.32:
//! TAB and 8-space continuations, both wordings of the control-plane sentence, klog lines,
//! tabwriter tables). Values are our own.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::time::{Duration, UNIX_EPOCH};

use hakube_kubeadm::{
    parse_get_nodes, parse_join_commands, parse_token_list, parse_upload_certs_key,
};

const HASH: &str = "sha256:0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb";
const KEY: &str = "7e2b41d09c3a58f6e1d7042bb9c6a3f5e8d10472c9b6a3e5f8d1047c2b9a6e3f";

/// The tail of `kubeadm init --upload-certs` with a controlPlaneEndpoint, v1.31 wording, TAB
/// continuations.
fn init_tail_v131() -> String {
    format!(
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n\
[upload-certs] Using certificate key:\n{KEY}\n\
[mark-control-plane] Marking the node cp1 as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]\n\
[bootstrap-token] Using token: q1w2e3.r4t5y6u7i8o9p0a1\n\
[addons] Applied essential addon: kube-proxy\n\n\
Your Kubernetes control-plane has initialized successfully!\n\n\
You can now join any number of the control-plane node running the following command on each as root:\n\n\
  kubeadm join k8s-api.example.lan:6443 --token q1w2e3.r4t5y6u7i8o9p0a1 \\\n\
\t--discovery-token-ca-cert-hash {HASH} \\\n\
\t--control-plane --certificate-key {KEY}\n\n\
Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n\
As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\
\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n\n\
Then you can join any number of worker nodes by running the following on each as root:\n\n\
kubeadm join k8s-api.example.lan:6443 --token q1w2e3.r4t5y6u7i8o9p0a1 \\\n\
\t--discovery-token-ca-cert-hash {HASH} \n"
    )
}

/// v1.32 wording, continuations rendered as 8 spaces.
fn init_tail_v132() -> String {
    format!(
        "You can now join any number of control-plane nodes running the following command on each as root:\n\n\
  kubeadm join 20.20.20.11:6443 --token ajrbck.gadjppj7nq122dde \\\n\
        --discovery-token-ca-cert-hash {HASH} \\\n\
        --control-plane --certificate-key {KEY}\n\n\
Then you can join any number of worker nodes by running the following on each as root:\n\n\
kubeadm join 20.20.20.11:6443 --token ajrbck.gadjppj7nq122dde \\\n\
        --discovery-token-ca-cert-hash {HASH}\n"
    )
}

#[test]
fn join_commands_from_init_output_both_versions() {
    for (text, endpoint, token) in [
        (
            init_tail_v131(),
            "k8s-api.example.lan:6443",
            "q1w2e3.r4t5y6u7i8o9p0a1",
        ),
        (
            init_tail_v132(),
            "20.20.20.11:6443",
            "ajrbck.gadjppj7nq122dde",
        ),
    ] {
        let cmds = parse_join_commands(&text).unwrap();
        assert_eq!(cmds.len(), 2, "{text}");
        let (cp, worker) = (&cmds[0], &cmds[1]);
        assert!(cp.control_plane && !worker.control_plane);
        assert_eq!(cp.endpoint, endpoint);
        assert_eq!(worker.endpoint, endpoint);
        assert_eq!(cp.token.expose(), token);
        assert_eq!(cp.ca_cert_hashes[0].to_string(), HASH);
        assert_eq!(worker.ca_cert_hashes.len(), 1);
        assert_eq!(cp.certificate_key.as_ref().unwrap().expose(), KEY);
        assert!(worker.certificate_key.is_none());
        // Secrets stay out of Debug.
        let dbg = format!("{cmds:?}");
        assert!(!dbg.contains(token) && !dbg.contains(KEY), "{dbg}");
    }
}

#[test]
fn join_command_from_token_create_single_line() {
    // `kubeadm token create --print-join-command`: one line with a trailing space.
    let text = format!(
        "kubeadm join 10.98.83.105:6443 --token jl42pk.knjelywrgiry3uru --discovery-token-ca-cert-hash {HASH} \n"
    );
    let cmds = parse_join_commands(&text).unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].endpoint, "10.98.83.105:6443");
    // `--flag=value` spelling and an unknown flag are tolerated.
    let text = format!(
        "kubeadm join 10.0.0.10:6443 --token=jl42pk.knjelywrgiry3uru --discovery-token-ca-cert-hash={HASH} --v 5 --control-plane --certificate-key={KEY}"
    );
    let cmds = parse_join_commands(&text).unwrap();
    assert!(cmds[0].control_plane);
    assert_eq!(cmds[0].certificate_key.as_ref().unwrap().expose(), KEY);
}

#[test]
fn join_command_errors_do_not_echo_secrets() {
    assert!(parse_join_commands("Your Kubernetes control-plane has initialized").is_err());
    let err = parse_join_commands("kubeadm join 10.0.0.10:6443 --token SECRETVALUE.x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bootstrap token") && !err.contains("SECRETVALUE"),
        "{err}"
    );
    assert!(
        parse_join_commands("kubeadm join 10.0.0.10:6443 --discovery-token-ca-cert-hash x")
            .is_err()
    );
}

#[test]
fn upload_certs_key_with_klog_noise() {
    let text = format!(
        "W0117 17:38:56.059723    4405 version.go:114] could not obtain client version; using remote version: v1.23.1\n\
[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n\
[upload-certs] Using certificate key:\n{KEY}\n"
    );
    assert_eq!(parse_upload_certs_key(&text).unwrap().expose(), KEY);
    // The full init output carries the key too (and in the join command, which is not a line of its own).
    assert_eq!(
        parse_upload_certs_key(&init_tail_v131()).unwrap().expose(),
        KEY
    );
    assert!(parse_upload_certs_key("[upload-certs] Using certificate key:\n").is_err());
}

#[test]
fn get_nodes_ready_states() {
    let text = "\
NAME       STATUS                     ROLES           AGE   VERSION
cp1        Ready                      control-plane   12m   v1.33.2
cp2        NotReady                   control-plane   40s   v1.33.2
w1         Ready,SchedulingDisabled   <none>          5m    v1.33.2
w2         Unknown                    <none>          5m    v1.33.2
";
    let nodes = parse_get_nodes(text).unwrap();
    let by = |n: &str| nodes.iter().find(|x| x.name == n).unwrap();
    assert!(by("cp1").ready && !by("cp2").ready && by("w1").ready && !by("w2").ready);
    assert_eq!(by("cp1").roles, ["control-plane"]);
    assert!(by("w1").roles.is_empty());
    assert_eq!(by("cp2").version.as_deref(), Some("v1.33.2"));
    // -o wide adds columns; "No resources found" has no header.
    let wide = "NAME   STATUS   ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION   CONTAINER-RUNTIME\n\
cp1    Ready    control-plane   1d    v1.33.2   10.0.0.21     <none>        Debian GNU/Linux 12 (bookworm)   6.1.0-27-amd64   containerd://1.7.24\n";
    let nodes = parse_get_nodes(wide).unwrap();
    assert!(nodes[0].ready);
    assert!(parse_get_nodes("No resources found\n").is_err());
}

#[test]
fn token_list_with_spaces_in_description() {
    let text = "\
TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS
abcdef.0123456789abcdef   23h         2025-01-01T00:00:00Z   authentication,signing   <none>                                                     system:bootstrappers:kubeadm:default-node-token
zyxwvu.9876543210zyxwvu   <forever>   <never>                authentication,signing   The default bootstrap token generated by 'kubeadm init'.   system:bootstrappers:kubeadm:default-node-token
";
    let toks = parse_token_list(text).unwrap();
    assert_eq!(toks.len(), 2);
    assert_eq!(toks[0].token.id(), "abcdef");
    assert_eq!(
        toks[0]
            .expires
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_735_689_600
    );
    assert_eq!(toks[0].usages, ["authentication", "signing"]);
    assert_eq!(
        toks[0].groups,
        ["system:bootstrappers:kubeadm:default-node-token"]
    );
    assert!(toks[1].expires.is_none());
    let before = UNIX_EPOCH + Duration::from_secs(1_735_689_600 - 3600);
    assert!(toks[0].valid_for(before, Duration::from_secs(600)));
    assert!(!toks[0].valid_for(before, Duration::from_secs(7200)));
    assert!(toks[1].valid_for(before, Duration::from_secs(1 << 30)));
    let dbg = format!("{toks:?}");
    assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    // An empty list prints only the header.
    assert!(
        parse_token_list("TOKEN   TTL   EXPIRES   USAGES   DESCRIPTION   EXTRA GROUPS\n")
            .unwrap()
            .is_empty()
    );
}
