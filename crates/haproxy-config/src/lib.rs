//! Typed HAProxy and keepalived configuration, rendered for a highly available Kubernetes API
//! and ingress.
//!
//! Two layers:
//!
//! - **A model** of the parts of `haproxy.cfg` ([`haproxy`]) and `keepalived.conf`
//!   ([`keepalived`]) a TCP/HTTP load balancer with a VRRP virtual IP needs, rendered through
//!   [`Display`](core::fmt::Display). Every free-form value is a validating newtype ([`Name`],
//!   [`Token`], [`AbsPath`], [`UriPath`], [`Interface`], [`Port`]) that rejects newlines, `#`,
//!   quotes, braces and whitespace where the grammar forbids them, so user input cannot add
//!   lines to a config. Sections whose parts must fit together are built by builders that
//!   check them in `build()`.
//! - **The reference design** ([`mod@reference`]): from a small [`HaInput`] (LB nodes, VIP,
//!   control-plane and worker addresses, Traefik NodePorts, TLS mode, VRRP router id), render
//!   `haproxy.cfg`, `keepalived.conf`, the keepalived health-check script and a
//!   `haproxy.service` drop-in for every LB node, and ([`needs`]) what else the node needs
//!   (packages, the script user, directories, config checks, services) as data.
//!
//! The crate does no I/O: it returns strings and the paths and modes they belong at.
//!
//! ```
//! use hakube_haproxy_config::{HaInput, IngressTls, CHECK_SCRIPT_PATH};
//! use std::net::IpAddr;
//!
//! let ip = |s: &str| s.parse::<IpAddr>().unwrap();
//! let input = HaInput::new(ip("10.0.0.10"), 51)
//!     .lb_subnet("10.0.0.0/24".parse().unwrap())
//!     .lb_node("lb1", ip("10.0.0.11"), "eth0")
//!     .lb_node("lb2", ip("10.0.0.12"), "eth0")
//!     .control_plane_node("cp1", ip("10.0.0.21"))
//!     .worker("w1", ip("10.0.0.31"))
//!     .ingress(30080, 30443, IngressTls::Passthrough);
//! let nodes = input.render()?;
//! assert_eq!(nodes.len(), 2);
//! assert_eq!(nodes[0].check_script.path, CHECK_SCRIPT_PATH);
//! assert!(nodes[0].haproxy_cfg.text().contains("server cp1 10.0.0.21:6443"));
//! assert!(nodes[1].keepalived_conf.text().contains("unicast_peer {\n        10.0.0.11\n"));
//!
//! // Bad input is refused with the field named.
//! let bad = HaInput::new(ip("10.0.0.10"), 51)
//!     .lb_node("lb1\n    server evil", ip("10.0.0.11"), "eth0")
//!     .control_plane_node("cp1", ip("10.0.0.21"));
//! assert_eq!(bad.render().unwrap_err().field(), "lb_nodes[0].name");
//! # Ok::<(), hakube_haproxy_config::Error>(())
//! ```

mod error;
pub mod haproxy;
pub mod keepalived;
pub mod needs;
pub mod reference;
mod value;

pub use error::{Error, Result};
pub use reference::{
    CHECK_SCRIPT_MODE, CHECK_SCRIPT_PATH, DEFAULT_ADVERT_INTERVAL, DEFAULT_SCRIPT_USER,
    HAPROXY_CFG_MODE, HAPROXY_CFG_PATH, HAPROXY_DROPIN_MODE, HAPROXY_DROPIN_PATH,
    HAPROXY_STATE_FILE, HEALTH_PORT, HaInput, Ingress, IngressTls, KEEPALIVED_CONF_MODE,
    KEEPALIVED_CONF_PATH, LbNode, LbNodeFiles, Member, STATS_PORT, TRACK_FILE, VAULT_PORT,
};
pub use value::{AbsPath, Directive, Interface, Name, Port, Token, UriPath};
