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

/// Entries `0..n` of the ops rows' maps: keys `key-000123` (see [`key`]) and values of
/// [`VALUE_LEN`] pseudo-random letters and digits ([`random_ish`] of the entry's number),
/// about 56 bytes of compact JSON per entry.
pub fn random_ish_entries(n: usize) -> impl Iterator<Item = (String, String)> {
    (0..n).map(|i| (key(i), random_ish(i as u64)))
}

/// Length of a [`random_ish`] string.
pub const VALUE_LEN: usize = 40;

/// [`VALUE_LEN`] ASCII letters and digits, a deterministic function of `seed` (splitmix64,
/// so that neighbouring seeds share nothing): no JSON escapes, no long runs that would
/// compress.
pub fn random_ish(seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    let mut out = String::with_capacity(VALUE_LEN);
    while out.len() < VALUE_LEN {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Ten 6-bit draws per 64-bit word.
        for _ in 0..10 {
            if out.len() == VALUE_LEN {
                break;
            }
            out.push(char::from(ALPHABET[(z & 63) as usize % ALPHABET.len()]));
            z >>= 6;
        }
    }
    out
}
