//! Invariants over generated input: nothing that passes validation can inject into an exports
//! line, and overlap detection agrees with `std::path::Path::starts_with`.

mod common;

use std::path::Path;

use hakube_nfs_provisioning::exports::{Client, ExportOptions, ExportPath, Squash};
use hakube_nfs_provisioning::{Error, ExportSpec, K8sName, NfsSetup};
use proptest::prelude::*;

fn path_like() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mostly plausible paths with a few nasty characters mixed in.
        "(/[a-z0-9._ ()#,\\n-]{0,6}){1,4}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn valid_paths_cannot_inject(s in path_like()) {
        if let Ok(p) = ExportPath::new(s.clone()) {
            let line = format!("{p} 10.0.0.0/24({})", ExportOptions::default());
            prop_assert_eq!(line.split_whitespace().count(), 2, "{:?}", line);
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(line.matches('(').count(), 1);
            prop_assert!(p.as_str().starts_with('/'));
            prop_assert!(!p.as_str().split('/').skip(1).any(|c| c.is_empty() || c == ".."));
        }
    }

    #[test]
    fn valid_clients_cannot_inject(s in "[a-z0-9.*?/:()#, \\n-]{0,20}") {
        if let Ok(c) = Client::parse(&s) {
            let text = c.to_string();
            prop_assert!(!text.contains(|ch: char| ch.is_whitespace() || "(),#".contains(ch)), "{:?}", text);
        }
    }

    #[test]
    fn options_render_one_of_each_pair(
        ro in any::<bool>(), asy in any::<bool>(), sub in any::<bool>(), ins in any::<bool>(),
        squash in 0u8..3, uid in any::<u32>(), fsid in proptest::option::of(any::<u32>()),
    ) {
        let o = ExportOptions {
            read_only: ro,
            async_writes: asy,
            subtree_check: sub,
            squash: match squash { 0 => Squash::Root, 1 => Squash::None, _ => Squash::All { anonuid: uid, anongid: uid } },
            fsid,
            insecure: ins,
        };
        let text = o.to_string();
        let opts: Vec<&str> = text.split(',').collect();
        for (a, b) in [("rw", "ro"), ("sync", "async"), ("subtree_check", "no_subtree_check")] {
            prop_assert_eq!(opts.iter().filter(|x| **x == a || **x == b).count(), 1, "{}", text);
        }
        prop_assert_eq!(opts.iter().filter(|x| x.ends_with("root_squash") || **x == "all_squash").count(), 1);
    }

    #[test]
    fn overlap_detection_matches_std_path(
        a in "(/[ab]{1,2}){1,3}", b in "(/[ab]{1,2}){1,3}",
    ) {
        let mut input = common::seed_input();
        input.exports = vec![
            ExportSpec::new(ExportPath::new(a.clone()).expect("a"), K8sName::new("one").expect("n")),
            ExportSpec::new(ExportPath::new(b.clone()).expect("b"), K8sName::new("two").expect("n")),
        ];
        let nested = Path::new(&a).starts_with(&b) || Path::new(&b).starts_with(&a);
        match NfsSetup::new(input) {
            Err(Error::OverlappingExports { .. }) => prop_assert!(nested, "{} {}", a, b),
            Ok(_) => prop_assert!(!nested, "{} {}", a, b),
            Err(other) => prop_assert!(false, "unexpected {}", other),
        }
    }
}
