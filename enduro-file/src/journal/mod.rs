//! The journal of a file atom in journal mode: `.NAME.enduro-journal`, beside the data
//! file. A commit appends one record and flushes it once (`fdatasync`); the data file
//! stays the last *snapshot*, and the value is the snapshot with the journal replayed.
//!
//! # Layout
//!
//! - Block 0 (4 KiB) is the header, in two copies (at 0 and at 2048), each saying which
//!   snapshot the records apply to: a random *epoch*, the snapshot's generation, and its
//!   length and CRC-32. A header is written copy A first, flushed, then copy B, flushed,
//!   and the first valid copy wins: a crash while writing one copy leaves the other whole.
//! - Records start at 4096, each at a fresh 4 KiB boundary, so that writing one never
//!   rewrites a byte of an earlier one: a torn write can only hit the record being
//!   written. A record is a 48-byte head (magic, CRC-32 of the rest, epoch, the
//!   generation it follows, kind, count, payload length) and its payload: the encoded
//!   value (kind 0), or `count` ops (kind 1, each a 4-byte length and the encoded op;
//!   see `enduro::Apply`), each op a generation of its own. The value is the last value
//!   (a record's, else the snapshot) with the ops after it applied, by the atom: the
//!   store only hands them over.
//! - The space records go into was written with zeros before (the file grows in steps of
//!   at least 1 MiB, flushed on their own), so a commit's flush carries no size or extent
//!   change: one flush per commit.
//!
//! # Which journal applies
//!
//! The records apply only if the header is valid and the data file is the snapshot it
//! names (same length and CRC-32). Otherwise the data file wins: a compaction that
//! renamed the new snapshot into place but crashed before starting the journal over, a
//! plain commit, or a hand edit. The one case where the data file could match an old
//! header again is a compaction whose snapshot has the old snapshot's very bytes: then
//! replaying gives the same value, so it does no harm. Commits that write a *different*
//! value by rename (plain handles, re-creation) first remove the journal, durably.
//!
//! # Reading
//!
//! Records are read in order; each must carry the header's epoch, a good checksum and
//! follow the previous generation. The first one that does not ends the journal: zeros
//! (never written), a record of an earlier epoch (space reused after a compaction), or a
//! torn record (a crash mid-write: never acknowledged). At open, what follows a bad record
//! is searched for a good one of this epoch: finding one means the bad record was
//! acknowledged and damaged since, which is corruption, reported with the offset, and
//! nothing is written. A torn tail is cut (zeroed) at open.
//!
//! This module holds the format and the open file; `read` reads records, `write` makes,
//! grows, appends to and restarts a journal. When a journal applies, and what a commit,
//! a compaction or a plain handle does with it, is the store's (`crate::store`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use enduro_core::{Error, Result};

mod read;
mod write;

/// The default floor of the bound on the records' size before a compaction (see [`bound`]).
pub(crate) const DEFAULT_LIMIT: u64 = 4 << 20;
/// Compaction also waits until the records take this many times the value's size.
pub(crate) const VALUE_FACTOR: u64 = 8;
/// Records are aligned to blocks of this size.
pub(crate) const BLOCK: u64 = 4096;
/// Where the first record goes.
pub(crate) const FIRST: u64 = BLOCK;
/// The least the journal grows by.
const GROW: u64 = 1 << 20;

const MAGIC: [u8; 8] = *b"enduroJ1";
/// One copy of the header.
const COPY: usize = 64;
/// Where the second copy is (another sector than the first).
const COPY_B: u64 = 2048;
const RECORD_MAGIC: [u8; 4] = *b"EJR1";
/// A record's head.
pub(crate) const HEAD: usize = 48;
/// A record holding a whole encoded value.
const KIND_VALUE: u32 = 0;
/// A record holding ops (see `enduro::Apply`): the head's count says how many; the
/// payload is each op as a 4-byte little-endian length and the encoded op. Each op is a
/// generation of its own.
const KIND_OPS: u32 = 1;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A whole value.
    Value,
    /// This many ops.
    Ops(u32),
}

impl Kind {
    /// How many generations the record takes.
    fn generations(self) -> u64 {
        match self {
            Kind::Value => 1,
            Kind::Ops(count) => u64::from(count),
        }
    }
}

/// Appends `ops` to `record` as an ops record's payload.
pub(crate) fn put_ops(record: &mut Vec<u8>, ops: &[&[u8]]) {
    for op in ops {
        record.extend_from_slice(&(op.len() as u32).to_le_bytes());
        record.extend_from_slice(op);
    }
}

/// One value or op read from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// The generation it made.
    pub(crate) generation: u64,
    /// Where its record is.
    pub(crate) at: u64,
    /// For an op: its place in its record, and how many the record holds.
    pub(crate) op: Option<(u32, u32)>,
    /// The encoded value or op.
    pub(crate) bytes: Vec<u8>,
}

/// CRC-32 (IEEE) of `bytes`.
pub(crate) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

fn half(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The space a record with a payload of `len` bytes takes.
pub(crate) fn span(len: u64) -> u64 {
    (HEAD as u64 + len).div_ceil(BLOCK) * BLOCK
}

/// What a header says: the snapshot the records apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Base {
    /// Random, new at every start over: records of another epoch are not this journal's.
    pub(crate) epoch: u64,
    /// The snapshot's generation: the first record follows it.
    pub(crate) generation: u64,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

impl Base {
    /// The base for a snapshot holding `bytes` at `generation`, with a fresh epoch.
    pub(crate) fn new(bytes: &[u8], generation: u64) -> Base {
        Base {
            epoch: crate::lock::new_incarnation(),
            generation,
            len: bytes.len() as u64,
            crc: crc(bytes),
        }
    }

    /// Whether the data file holding `bytes` is this journal's snapshot.
    pub(crate) fn matches(&self, bytes: &[u8]) -> bool {
        self.len == bytes.len() as u64 && self.crc == crc(bytes)
    }

    fn encode(&self) -> [u8; COPY] {
        let mut out = [0u8; COPY];
        out[..8].copy_from_slice(&MAGIC);
        out[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        out[16..24].copy_from_slice(&self.generation.to_le_bytes());
        out[24..32].copy_from_slice(&self.len.to_le_bytes());
        out[32..36].copy_from_slice(&self.crc.to_le_bytes());
        let check = crc(&out[..COPY - 4]);
        out[COPY - 4..].copy_from_slice(&check.to_le_bytes());
        out
    }

    fn parse(copy: &[u8]) -> Option<Base> {
        let intact = copy[..8] == MAGIC && half(copy, COPY - 4) == crc(&copy[..COPY - 4]);
        intact.then(|| Base {
            epoch: word(copy, 8),
            generation: word(copy, 16),
            len: word(copy, 24),
            crc: half(copy, 32),
        })
    }
}

/// What the journal's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    Valid(Base),
    /// Nothing written yet (a crash while the journal was being made).
    Blank,
    /// Neither copy reads.
    Damaged,
}

/// Where reading the records stopped, and what they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Where the next record goes.
    pub(crate) tail: u64,
    /// The generation of the last record read (the base's when there is none).
    pub(crate) generation: u64,
    /// Where the last value record is, when there is one (else the snapshot is the last
    /// value).
    pub(crate) last: Option<u64>,
    /// Whether ops follow the last value.
    pub(crate) ops: bool,
}

impl Cursor {
    /// Before the first record of the journal of `base`.
    pub(crate) fn start(base: &Base) -> Cursor {
        Cursor {
            tail: FIRST,
            generation: base.generation,
            last: None,
            ops: false,
        }
    }
}

/// The journal file, open.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
    /// The file's identity (device, inode), to tell whether it is still the one at the
    /// path.
    id: (u64, u64),
    writable: bool,
}

impl Journal {
    /// Opens the journal at `path`; `None` when there is none.
    pub(crate) fn open(path: &Path, write: bool) -> Result<Option<Journal>> {
        // Looked at before it is opened, without following a symlink: opening a FIFO
        // would hang, and a symlink planted there would have records written through it.
        let seen = match std::fs::symlink_metadata(path) {
            Ok(seen) => seen,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("inspect the journal", path, e)),
        };
        if !seen.is_file() {
            return Err(not_a_file(path));
        }
        let file = match OpenOptions::new().read(true).write(write).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open the journal", path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the journal", path, e))?;
        // Replaced (by a symlink, say) between the look and the opening.
        if !meta.is_file() || (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
            return Err(not_a_file(path));
        }
        Ok(Some(Journal {
            file,
            path: path.to_path_buf(),
            len: meta.len(),
            id: (meta.dev(), meta.ino()),
            writable: write,
        }))
    }

    /// Whether it was opened for writing.
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// Takes the file's size again, from the open file and without asking for its
    /// attributes (`lseek`): asking for them (`stat`) would make the kernel stamp the next
    /// write with a fine-grained time, and write the inode for it, which costs a flush
    /// about a third more on ext4 (Linux 6.13 and later).
    pub(crate) fn refresh_len(&mut self) -> Result<()> {
        self.len = (&self.file)
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("find the end of the journal", &self.path, e))?;
        Ok(())
    }

    /// The epoch of the header's first copy, if it reads (one small read).
    pub(crate) fn epoch(&self) -> Result<Option<u64>> {
        let mut copy = [0u8; COPY];
        let got = self.read_upto(&mut copy, 0)?;
        Ok((got == COPY)
            .then(|| Base::parse(&copy))
            .flatten()
            .map(|b| b.epoch))
    }

    /// Whether a record of epoch `epoch` following `cursor` starts at its tail (its head
    /// only is read, not checked: a torn one says yes, and the full read that follows
    /// finds it torn).
    pub(crate) fn probe(&self, epoch: u64, cursor: Cursor) -> Result<bool> {
        let mut head = [0u8; HEAD];
        let got = self.read_upto(&mut head, cursor.tail)?;
        Ok(got == HEAD
            && head[..4] == RECORD_MAGIC
            && word(&head, 8) == epoch
            && word(&head, 16) == cursor.generation)
    }

    /// Whether this is the file now at its path, whose metadata is `meta`; if so, takes
    /// its size from it (another process may have grown it).
    pub(crate) fn is_at_path(&mut self, meta: &std::fs::Metadata) -> bool {
        let same = self.id == (meta.dev(), meta.ino());
        if same {
            self.len = meta.len();
        }
        same
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn header(&self) -> Result<Header> {
        let mut block = [0u8; COPY_B as usize + COPY];
        let got = self.read_upto(&mut block, 0)?;
        if got < block.len() {
            // Shorter than a header: a crash while it was being made.
            return Ok(if block[..got].iter().all(|b| *b == 0) {
                Header::Blank
            } else {
                Header::Damaged
            });
        }
        let (a, b) = (&block[..COPY], &block[COPY_B as usize..]);
        if let Some(base) = Base::parse(a).or_else(|| Base::parse(b)) {
            return Ok(Header::Valid(base));
        }
        Ok(if block.iter().all(|b| *b == 0) {
            Header::Blank
        } else {
            Header::Damaged
        })
    }

    /// Reads up to `buf.len()` bytes at `at`; how many there were.
    fn read_upto(&self, buf: &mut [u8], at: u64) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.file.read_at(&mut buf[got..], at + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read the journal", &self.path, e)),
            }
        }
        Ok(got)
    }

    /// Flushes the journal's data (`fdatasync`).
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync the journal", &self.path, e))
    }
}

fn not_a_file(path: &Path) -> Error {
    Error::InvalidPath {
        path: path.to_path_buf(),
        reason: "enduro's journal is not a regular file here (a symlink, a FIFO, a \
                 directory?); move what is at that path away"
            .into(),
    }
}

/// The records' space, past which a journal holding a value of `value_len` bytes is
/// compacted: `limit`, or [`VALUE_FACTOR`] times the value's size if that is larger.
pub(crate) fn bound(limit: u64, value_len: u64) -> u64 {
    limit.max(value_len.saturating_mul(VALUE_FACTOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &Path, base: &Base) -> Journal {
        Journal::create(&dir.join("j"), base, 0, 0o600).expect("create")
    }

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; HEAD];
        r.extend_from_slice(payload);
        r
    }

    #[test]
    fn headers_round_trip_and_survive_damage_to_one_copy() {
        let base = Base::new(b"snapshot", 7);
        let dir = tempfile::tempdir().expect("dir");
        let j = journal(dir.path(), &base);
        assert_eq!(j.header().expect("header"), Header::Valid(base));
        j.file.write_all_at(&[0xff; 8], 16).expect("damage A");
        assert_eq!(j.header().expect("header"), Header::Valid(base));
        j.file
            .write_all_at(&[0xff; 8], COPY_B + 16)
            .expect("damage B");
        assert_eq!(j.header().expect("header"), Header::Damaged);
        assert!(base.matches(b"snapshot"));
        assert!(!base.matches(b"snapshoT"));
    }

    #[test]
    fn records_append_scan_and_a_torn_tail_ends_them() {
        let base = Base::new(b"0", 3);
        let dir = tempfile::tempdir().expect("dir");
        let mut j = journal(dir.path(), &base);
        let mut cursor = Cursor::start(&base);
        for n in 1..=3u8 {
            cursor = j
                .append(
                    "test",
                    &base,
                    cursor,
                    &mut record(&vec![n; 5000]),
                    Kind::Value,
                )
                .expect("append");
        }
        assert_eq!(cursor.generation, 6);
        assert_eq!(cursor.tail, FIRST + 3 * 2 * BLOCK);
        let scan = j
            .scan(&base, Cursor::start(&base), true, false)
            .expect("scan");
        assert_eq!(scan.cursor, cursor);
        let last = scan.items.last().map(|item| item.bytes.clone());
        assert_eq!(last, Some(vec![3; 5000]));
        assert_eq!(scan.items.len(), 1, "without steps, from the last value on");
        // A torn fourth record: cut, not an error.
        j.file
            .write_all_at(b"EJR1garbage", cursor.tail)
            .expect("tear");
        let scan = j
            .scan(&base, Cursor::start(&base), true, false)
            .expect("scan");
        assert_eq!(scan.cursor, cursor);
        assert_eq!(scan.torn, Some((cursor.tail, BLOCK)));
        // Damage to the second record while the third is good: corruption, named.
        j.file
            .write_all_at(&[0xee], FIRST + 2 * BLOCK + 100)
            .expect("damage");
        let err = j
            .scan(&base, Cursor::start(&base), true, false)
            .unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { offset, .. } if offset == FIRST + 2 * BLOCK),
            "{err}"
        );
        // Without the check, reading stops there (a reader does not judge).
        let scan = j
            .scan(&base, Cursor::start(&base), false, false)
            .expect("scan");
        assert_eq!(scan.cursor.generation, 4);
    }

    #[test]
    fn ops_records_take_one_generation_per_op_and_read_back_after_the_last_value() {
        let base = Base::new(b"0", 10);
        let dir = tempfile::tempdir().expect("dir");
        let mut j = journal(dir.path(), &base);
        let mut cursor = Cursor::start(&base);
        let ops = |ops: &[&[u8]]| {
            let mut r = vec![0u8; HEAD];
            put_ops(&mut r, ops);
            r
        };
        cursor = j
            .append(
                "test",
                &base,
                cursor,
                &mut ops(&[b"a", b"", b"bc"]),
                Kind::Ops(3),
            )
            .expect("ops");
        assert_eq!(
            (cursor.generation, cursor.last, cursor.ops),
            (13, None, true)
        );
        let value_at = cursor.tail;
        cursor = j
            .append("test", &base, cursor, &mut record(b"V"), Kind::Value)
            .expect("value");
        assert_eq!(
            (cursor.generation, cursor.last, cursor.ops),
            (14, Some(value_at), false)
        );
        cursor = j
            .append("test", &base, cursor, &mut ops(&[b"d"]), Kind::Ops(1))
            .expect("ops");
        assert_eq!(cursor.generation, 15);
        // Every item, with steps; from the last value on, without.
        let all = j
            .scan(&base, Cursor::start(&base), true, true)
            .expect("scan");
        type Seen<'a> = (u64, Option<(u32, u32)>, &'a [u8]);
        let seen: Vec<Seen> = all
            .items
            .iter()
            .map(|i| (i.generation, i.op, &i.bytes[..]))
            .collect();
        assert_eq!(
            seen,
            [
                (11, Some((0, 3)), &b"a"[..]),
                (12, Some((1, 3)), &b""[..]),
                (13, Some((2, 3)), &b"bc"[..]),
                (14, None, &b"V"[..]),
                (15, Some((0, 1)), &b"d"[..]),
            ]
        );
        assert!(all.steps);
        assert_eq!(all.cursor, cursor);
        let tail = j
            .scan(&base, Cursor::start(&base), true, false)
            .expect("scan");
        assert_eq!(tail.items.len(), 2);
        assert_eq!(tail.items[0].bytes, b"V");
        // An ops record whose count does not match its contents: damage, named.
        let at = cursor.tail;
        j.append("test", &base, cursor, &mut ops(&[b"x"]), Kind::Ops(2))
            .expect("append");
        let err = j
            .scan(&base, Cursor::start(&base), true, false)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { offset, reason, .. } if *offset == at && reason.contains("2 ops")),
            "{err}"
        );
    }

    #[test]
    fn a_restarted_journal_ignores_the_old_records() {
        let base = Base::new(b"0", 1);
        let dir = tempfile::tempdir().expect("dir");
        let mut j = journal(dir.path(), &base);
        let mut cursor = Cursor::start(&base);
        for _ in 0..3 {
            cursor = j
                .append("test", &base, cursor, &mut record(b"x"), Kind::Value)
                .expect("append");
        }
        let next = Base::new(b"x", cursor.generation);
        j.restart(&next).expect("restart");
        assert_eq!(j.header().expect("header"), Header::Valid(next));
        let scan = j
            .scan(&next, Cursor::start(&next), true, false)
            .expect("scan");
        assert_eq!(scan.cursor, Cursor::start(&next));
        assert!(scan.items.is_empty());
        assert_eq!(scan.torn, None);
    }
}
