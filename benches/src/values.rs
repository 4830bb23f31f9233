//! The values the scenarios swap.

use std::collections::BTreeMap;

/// A map of strings whose compact JSON encoding is about `bytes` long: keys `key-000123`,
/// values of 100 characters.
pub fn map_of_strings(bytes: usize) -> BTreeMap<String, String> {
    // `"key-000123":"<100 chars>",` is 115 bytes.
    let entries = bytes.div_ceil(115);
    (0..entries)
        .map(|i| (key(i), format!("{i:0>100}")))
        .collect()
}

/// The key of entry `i` in [`map_of_strings`].
pub fn key(i: usize) -> String {
    format!("key-{i:06}")
}

/// One step of a swap on a map: the same map with entry `i % len` changed.
pub fn touch(map: &mut BTreeMap<String, String>, i: usize) {
    let len = map.len().max(1);
    map.insert(key(i % len), format!("{i:x>100}"));
}

/// A `Vec<String>` taking about `mib` MiB of heap: strings of 1000 bytes.
pub fn big_strings(mib: usize) -> Vec<String> {
    let count = mib * 1024 * 1024 / (1000 + 24);
    (0..count).map(|i| format!("{i:y>1000}")).collect()
}
