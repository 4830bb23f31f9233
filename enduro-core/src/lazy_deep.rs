//! Values nested as deep as a test asks, generated while they are serialized: nothing deep
//! is built, so nothing deep has to be dropped. For the JSON round-trip guard's unit tests
//! and the conformance kit's deep-value cases.

/// Defines `$name(depth)`, a value that serializes as `depth` levels of one shape around
/// `0`, the level below being `$next(depth - 1)`. The levels are generated as they are
/// serialized: nothing deep is built, so nothing deep has to be dropped. One shape per
/// type, as derived code has, so that the test's own stack frames stay realistic.
macro_rules! lazy {
    ($name:ident, $next:ident, |$serializer:ident, $inner:ident| $level:expr) => {
        pub(crate) struct $name(pub(crate) usize);

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, $serializer: S) -> Result<S::Ok, S::Error> {
                #[allow(unused_imports)]
                use serde::ser::{SerializeMap, SerializeSeq};
                let Some(depth) = self.0.checked_sub(1) else {
                    return $serializer.serialize_u8(0);
                };
                let $inner = $next(depth);
                $level
            }
        }
    };
}

lazy!(Variants, Variants, |s, inner| s
    .serialize_newtype_variant("Deep", 0, "V", &inner));
lazy!(Seqs, Seqs, |s, inner| {
    let mut seq = s.serialize_seq(Some(1))?;
    seq.serialize_element(&inner)?;
    seq.end()
});
lazy!(Maps, Maps, |s, inner| {
    let mut map = s.serialize_map(Some(1))?;
    map.serialize_entry("k", &inner)?;
    map.end()
});
lazy!(Newtypes, Newtypes, |s, inner| s
    .serialize_newtype_struct("Deep", &inner));
lazy!(Somes, Somes, |s, inner| s.serialize_some(&inner));
// Some, newtype, variant and sequence in turn: levels with wrappers between them.
lazy!(MixedSome, MixedNewtype, |s, inner| s.serialize_some(&inner));
lazy!(MixedNewtype, MixedVariant, |s, inner| s
    .serialize_newtype_struct("Deep", &inner));
lazy!(MixedVariant, MixedSeq, |s, inner| s
    .serialize_newtype_variant("Deep", 0, "V", &inner));
lazy!(MixedSeq, MixedSome, |s, inner| {
    let mut seq = s.serialize_seq(Some(1))?;
    seq.serialize_element(&inner)?;
    seq.end()
});
