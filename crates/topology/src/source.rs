//! Where each field of a topology file stands: a map from field path (`workers.groups[0].count`)
//! to line and column, so errors found after parsing can point into the file.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A position in a topology file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Field paths and their positions.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMap {
    paths: BTreeMap<String, Position>,
}

impl SourceMap {
    /// Builds the map; `None` when the text is not YAML (the typed parse reports why).
    pub(crate) fn build(text: &str) -> Option<Self> {
        let root: Spanned<Node> = serde_saphyr::from_str(text).ok()?;
        let mut map = Self::default();
        map.walk(String::new(), &root);
        Some(map)
    }

    fn walk(&mut self, path: String, node: &Spanned<Node>) {
        self.walk_at(path, node.referenced, &node.value);
    }

    /// Records `path` at `loc` (a mapping key's position, or a sequence item's), then its children.
    fn walk_at(&mut self, path: String, loc: serde_saphyr::Location, node: &Node) {
        if loc.line() > 0 {
            self.paths.insert(
                path.clone(),
                Position {
                    line: loc.line(),
                    column: loc.column(),
                },
            );
        }
        match node {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let child = if path.is_empty() {
                        key.value.0.clone()
                    } else {
                        format!("{path}.{}", key.value.0)
                    };
                    self.walk_at(child, key.referenced, &value.value);
                }
            }
            Node::Seq(items) => {
                for (i, value) in items.iter().enumerate() {
                    self.walk(format!("{path}[{i}]"), value);
                }
            }
            Node::Leaf => {}
        }
    }

    /// The position of `path`, or of its nearest ancestor present in the file.
    pub(crate) fn position(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.paths.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The deepest path whose value starts at or before `pos` (what a parse error is about).
    pub(crate) fn path_at(&self, pos: Position) -> Option<&str> {
        self.paths
            .iter()
            .filter(|(_, p)| **p <= pos)
            .max_by(|a, b| a.1.cmp(b.1).then(a.0.len().cmp(&b.0.len())))
            .map(|(k, _)| k.as_str())
    }
}

/// A YAML node reduced to its shape.
enum Node {
    Map(Vec<(Spanned<Key>, Spanned<Self>)>),
    Seq(Vec<Spanned<Self>>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! leaf {
    ($($name:ident: $ty:ty),*) => {
        $(fn $name<E: de::Error>(self, _: $ty) -> Result<Node, E> { Ok(Node::Leaf) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    leaf!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str,
          visit_i128: i128, visit_u128: u128, visit_bytes: &[u8]);

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Leaf)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key of any scalar type, as text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
                Ok(Key("~".to_owned()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_positions() {
        let text = "a:\n  b: 1\n  c:\n    - x: 2\n    - y: 3\n";
        let map = SourceMap::build(text).unwrap();
        assert_eq!(map.position("a.b"), Some(Position { line: 2, column: 3 }));
        assert_eq!(map.position("a.c[1].y").map(|p| p.line), Some(5));
        // A missing field points at its parent.
        assert_eq!(map.position("a.c[1].z").map(|p| p.line), Some(5));
        assert_eq!(
            map.path_at(Position { line: 4, column: 9 }),
            Some("a.c[0].x")
        );
    }
}
