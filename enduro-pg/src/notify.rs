//! What a commit tells live atoms, and how: every commit, insert, delete and drop of a
//! table's rows sends `pg_notify(channel, payload)` in its own statement (or transaction),
//! so a rolled-back commit tells nobody and a committed one always tells every listener.
//!
//! - **Channel**: one per table, `enduro_` and 16 hex digits of a stable hash of the
//!   table's schema-qualified name as the server resolved it (so `hits` and
//!   `public.hits` share one), well within PostgreSQL's 63-byte limit for any name.
//! - **Payload**: `GENERATION INCARNATION TAG`: the row's new `version` and
//!   `incarnation` (`-` for none; a version of `-` when unknown, as after a delete), and
//!   which row: `k` and the key itself, or for keys longer than [`KEY_IN_PAYLOAD`] bytes,
//!   `h` and a hash of the key, so the payload stays far below NOTIFY's 8000-byte limit
//!   (also after conversion to a server encoding other than UTF-8); `*` for the whole
//!   table (a `DROP TABLE`).
//!
//! Hash collisions only make a listener nudge an atom that did not change, which costs
//! one spurious check and is never wrong.

use enduro_core::Version;

/// Keys up to this many bytes travel in the payload as they are; longer ones as a hash.
/// Even at twice the size after a conversion to the server's encoding, the payload stays
/// under NOTIFY's 8000 bytes.
pub(crate) const KEY_IN_PAYLOAD: usize = 2048;

/// The tag of a `DROP TABLE`, which concerns every row.
pub(crate) const WHOLE_TABLE: &str = "*";

/// The payload of a release (a `DELETE`), which has no version, without the tag.
pub(crate) const GONE: &str = "- - ";

/// FNV-1a, 64 bits: stable across processes, machines and Rust versions (unlike the
/// standard library's hasher), as every process must name the same channel.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The channel of the table `schema`.`name` (as the server resolved them).
pub(crate) fn channel(schema: &str, name: &str) -> String {
    let mut bytes = Vec::with_capacity(schema.len() + name.len() + 1);
    bytes.extend_from_slice(schema.as_bytes());
    // NUL cannot occur in a name, so no two pairs give the same bytes.
    bytes.push(0);
    bytes.extend_from_slice(name.as_bytes());
    format!("enduro_{:016x}", fnv1a(&bytes))
}

/// What a commit of row `key` puts at the end of its payload, and what the listener
/// routes notifications by.
pub(crate) fn tag(key: &str) -> String {
    if key.len() <= KEY_IN_PAYLOAD {
        format!("k{key}")
    } else {
        // Two independent halves: 128 bits, so that no two long keys of one table share
        // a tag in practice.
        let mut salted = Vec::with_capacity(key.len() + 1);
        salted.push(0xff); // never the first byte of UTF-8 text
        salted.extend_from_slice(key.as_bytes());
        format!(
            "h{:016x}{:016x}{}",
            fnv1a(key.as_bytes()),
            fnv1a(&salted),
            key.len()
        )
    }
}

/// A notification's payload, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note<'a> {
    /// The row's new version, when the payload says it: `(version, incarnation)` columns.
    pub(crate) version: Option<(i64, Option<i64>)>,
    /// The tag of the row (see [`tag`]), or [`WHOLE_TABLE`].
    pub(crate) tag: &'a str,
}

impl Note<'_> {
    /// The version a store's `load` would report for the row, given how versions are
    /// made from the columns (`fingerprint`).
    pub(crate) fn version(&self, fingerprint: impl Fn(Option<i64>) -> u64) -> Option<Version> {
        self.version.map(|(generation, incarnation)| {
            Version::new(generation as u64, fingerprint(incarnation))
        })
    }
}

/// Reads a payload; `None` for one enduro did not write (someone else's NOTIFY on the
/// channel), which the listener takes as "anything may have changed".
pub(crate) fn parse(payload: &str) -> Option<Note<'_>> {
    let mut parts = payload.splitn(3, ' ');
    let (generation, incarnation, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if tag.is_empty() {
        return None;
    }
    let version = match (generation, incarnation) {
        ("-", _) => None,
        (generation, "-") => Some((generation.parse().ok()?, None)),
        (generation, incarnation) => {
            Some((generation.parse().ok()?, Some(incarnation.parse().ok()?)))
        }
    };
    Some(Note { version, tag })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_short_valid_names_and_stable() {
        let c = channel("public", "hits");
        assert_eq!(c.len(), 23);
        assert!(
            c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        );
        // Pinned: every process, on every machine and version, must name the same one.
        assert_eq!(c, channel("public", "hits"));
        assert_eq!(c, format!("enduro_{:016x}", fnv1a(b"public\0hits")));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(channel("public", "hits"), channel("app", "hits"));
        assert_ne!(channel("a.b", "c"), channel("a", "b.c"));
        let long = "x".repeat(63);
        assert!(channel(&long, &long).len() < 64);
    }

    #[test]
    fn payloads_round_trip() {
        let key = "a key with spaces";
        let payload = format!("17 42 {}", tag(key));
        let note = parse(&payload).unwrap();
        assert_eq!(note.version, Some((17, Some(42))));
        assert_eq!(note.tag, tag(key));
        assert_eq!(
            parse(&format!("-9223372036854775808 - {}", tag("k")))
                .unwrap()
                .version,
            Some((i64::MIN, None))
        );
        let gone = format!("{GONE}{}", tag(key));
        assert_eq!(parse(&gone).unwrap().version, None);
        assert_eq!(
            parse(&format!("{GONE}{WHOLE_TABLE}")).unwrap().tag,
            WHOLE_TABLE
        );
        for foreign in ["", "hello", "1 2", "x 2 kkey", "1 y kkey", "1 2 "] {
            assert_eq!(parse(foreign), None, "{foreign:?}");
        }
        let note = parse("5 - kk").unwrap();
        assert_eq!(note.version(|_| 9), Some(Version::new(5, 9)));
    }

    #[test]
    fn long_keys_are_hashed_and_short_ones_kept() {
        let short = "k".repeat(KEY_IN_PAYLOAD);
        assert_eq!(tag(&short), format!("k{short}"));
        let long = "k".repeat(10_000_000);
        let t = tag(&long);
        assert!(t.starts_with('h') && t.len() < 64, "{t}");
        assert_ne!(t, tag(&"k".repeat(10_000_001)));
        assert_ne!(tag(WHOLE_TABLE), WHOLE_TABLE);
        // The longest payload: two i64s, two spaces and the longest tag in UTF-8 text.
        let worst = format!(
            "{} {} {}",
            i64::MIN,
            i64::MIN,
            tag(&"é".repeat(KEY_IN_PAYLOAD / 2))
        );
        assert!(2 * worst.len() < 8000, "{}", worst.len());
    }
}
