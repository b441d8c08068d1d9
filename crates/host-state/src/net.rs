//! Network helpers.

use ipnet::IpNet;

/// Whether two networks share at least one address (one contains the other's first
/// address). Networks of different families never overlap.
///
/// ```
/// use hakube_host_state::nets_overlap;
/// let n = |s: &str| s.parse().unwrap();
/// assert!(nets_overlap(n("10.0.0.0/16"), n("10.0.5.0/24")));
/// assert!(!nets_overlap(n("10.0.0.0/24"), n("10.0.1.0/24")));
/// assert!(!nets_overlap(n("10.0.0.0/8"), n("fd00::/8")));
/// ```
#[must_use]
pub fn nets_overlap(a: IpNet, b: IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(a), IpNet::V4(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        (IpNet::V6(a), IpNet::V6(b)) => a.contains(&b.network()) || b.contains(&a.network()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Overlap is symmetric and agrees with "some address is in both".
        #[test]
        fn overlap_matches_membership(a in any::<u32>(), la in 20u8..=32, b in any::<u32>(), lb in 20u8..=32) {
            let na = ipnet::Ipv4Net::new(a.into(), la).expect("prefix").trunc();
            let nb = ipnet::Ipv4Net::new(b.into(), lb).expect("prefix").trunc();
            let shared = na.hosts().any(|h| nb.contains(&h))
                || nb.contains(&na.network())
                || na.contains(&nb.network());
            prop_assert_eq!(nets_overlap(na.into(), nb.into()), shared);
            prop_assert_eq!(nets_overlap(na.into(), nb.into()), nets_overlap(nb.into(), na.into()));
        }
    }
}
