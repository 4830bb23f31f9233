//! Reading a journal: records one by one, checked; where they end; corruption.

use enduro_core::{Error, Result};

use super::{
    BLOCK, Base, Cursor, FIRST, HEAD, Item, Journal, KIND_OPS, KIND_VALUE, Kind, RECORD_MAGIC, crc,
    half, span, word,
};

/// How many bytes of earlier records a scan keeps for [`Scan::earlier`]; a reader that
/// fell further behind sees the records it missed as one change.
const EARLIER_CAP: usize = 64 << 20;

/// What reading records found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) cursor: Cursor,
    /// The values and ops read, oldest first: every one when [`steps`](Scan::steps),
    /// else the last value read and the ops after it (only ops when no value was read).
    pub(crate) items: Vec<Item>,
    /// Whether `items` holds every value and op read (asked for, and less than
    /// [`EARLIER_CAP`] bytes of them).
    pub(crate) steps: bool,
    /// A bad record at the tail (offset, space it may take): a crash's torn write.
    pub(crate) torn: Option<(u64, u64)>,
    /// How many value records were read.
    pub(crate) values: u64,
    /// How many ops were read (in however many records).
    pub(crate) ops: u64,
}

/// One record, as read.
enum Read {
    Record {
        follows: u64,
        kind: Kind,
        payload: Vec<u8>,
    },
    /// Zeros, or the end of the file: nothing was ever written here.
    Zero,
    /// A good record of another epoch: space reused after a compaction.
    Stale,
    /// Anything else: a torn or damaged record; `span` is the space it may take.
    Bad { span: u64, why: String },
}

impl Journal {
    /// The record at `at`, for the journal of epoch `epoch`.
    fn read(&self, at: u64, epoch: u64) -> Result<Read> {
        let first = BLOCK.min(self.len.saturating_sub(at)) as usize;
        if first < HEAD {
            return Ok(Read::Zero);
        }
        let mut bytes = vec![0u8; first];
        let got = self.read_upto(&mut bytes, at)?;
        bytes.truncate(got);
        if bytes.len() < HEAD || bytes[..HEAD].iter().all(|b| *b == 0) {
            return Ok(Read::Zero);
        }
        if bytes[..4] != RECORD_MAGIC {
            return Ok(Read::Bad {
                span: BLOCK,
                why: "no record starts here".into(),
            });
        }
        let len = word(&bytes, 32);
        let room = self.len - at;
        if len > room.saturating_sub(HEAD as u64) {
            return Ok(Read::Bad {
                span: BLOCK,
                why: format!("the record says it holds {len} bytes, past the journal's end"),
            });
        }
        let whole = HEAD + len as usize;
        if bytes.len() < whole {
            let have = bytes.len();
            bytes.resize(whole, 0);
            let got = self.read_upto(&mut bytes[have..], at + have as u64)?;
            bytes.truncate(have + got);
        }
        bytes.truncate(whole);
        let span = span(len);
        if bytes.len() < whole || half(&bytes, 4) != crc(&bytes[8..]) {
            return Ok(Read::Bad {
                span,
                why: "the record's checksum does not match its contents".into(),
            });
        }
        if word(&bytes, 8) != epoch {
            return Ok(Read::Stale);
        }
        let kind = match (half(&bytes, 24), half(&bytes, 28)) {
            (KIND_VALUE, _) => Kind::Value,
            (KIND_OPS, count) if count > 0 => Kind::Ops(count),
            (code, _) => {
                return Err(Error::Corrupt {
                    path: self.path.clone(),
                    offset: at,
                    reason: format!(
                        "the record is of kind {code}, which this version of enduro does \
                         not know (written by a newer enduro?); open it with that version"
                    ),
                });
            }
        };
        let follows = word(&bytes, 16);
        bytes.drain(..HEAD);
        Ok(Read::Record {
            follows,
            kind,
            payload: bytes,
        })
    }

    /// The ops of an ops record at `at` (its checksum was good: a payload that does not
    /// split into `count` ops was written so, and is reported as damage).
    fn split_ops(&self, at: u64, payload: &[u8], count: u32) -> Result<Vec<Vec<u8>>> {
        let mut ops = Vec::with_capacity(count as usize);
        let mut rest = payload;
        while rest.len() >= 4 && ops.len() < count as usize {
            let len = half(rest, 0) as usize;
            let Some(op) = rest.get(4..4 + len) else {
                break;
            };
            ops.push(op.to_vec());
            rest = &rest[4 + len..];
        }
        if ops.len() != count as usize || !rest.is_empty() {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                offset: at,
                reason: format!(
                    "the record says it holds {count} ops, but its contents do not split \
                     into {count} ops"
                ),
            });
        }
        Ok(ops)
    }

    /// Reads the records of the journal of `base` from `from` on, keeping the last
    /// payload, and with `steps` the earlier ones too. With `check`, a bad record is
    /// followed by a search for a good record of this epoch after it, which makes it
    /// corruption (an error naming the offset).
    pub(crate) fn scan(&self, base: &Base, from: Cursor, check: bool, steps: bool) -> Result<Scan> {
        let mut cursor = from;
        let mut items: Vec<Item> = Vec::new();
        let mut kept = 0;
        let mut steps = steps;
        let (mut values, mut op_count) = (0, 0);
        let done = |cursor, items, steps, torn, values, ops| {
            Ok(Scan {
                cursor,
                items,
                steps,
                torn,
                values,
                ops,
            })
        };
        loop {
            match self.read(cursor.tail, base.epoch)? {
                Read::Record {
                    follows,
                    kind,
                    payload,
                } if follows == cursor.generation => {
                    let at = cursor.tail;
                    cursor.tail += span(payload.len() as u64);
                    cursor.generation += kind.generations();
                    match kind {
                        Kind::Value => {
                            values += 1;
                            if !steps {
                                items.clear();
                                kept = 0;
                            }
                            kept += payload.len();
                            items.push(Item {
                                generation: cursor.generation,
                                at,
                                op: None,
                                bytes: payload,
                            });
                            cursor.last = Some(at);
                            cursor.ops = false;
                        }
                        Kind::Ops(count) => {
                            let ops = self.split_ops(at, &payload, count)?;
                            op_count += u64::from(count);
                            for (index, op) in ops.into_iter().enumerate() {
                                kept += op.len();
                                items.push(Item {
                                    generation: follows + 1 + index as u64,
                                    at,
                                    op: Some((index as u32, count)),
                                    bytes: op,
                                });
                            }
                            cursor.ops = true;
                        }
                    }
                    if steps && kept > EARLIER_CAP {
                        // Too far behind for one step per commit: from the last value on.
                        steps = false;
                        if let Some(last) = items.iter().rposition(|item| item.op.is_none()) {
                            items.drain(..last);
                        }
                    }
                }
                Read::Record { follows, .. } => {
                    return Err(Error::Corrupt {
                        path: self.path.clone(),
                        offset: cursor.tail,
                        reason: format!(
                            "the record follows generation {follows}, but the one before it \
                             is generation {}: records are missing or out of order",
                            cursor.generation
                        ),
                    });
                }
                Read::Zero => return done(cursor, items, steps, None, values, op_count),
                Read::Stale | Read::Bad { .. } if !check => {
                    return done(cursor, items, steps, None, values, op_count);
                }
                Read::Stale => {
                    self.nothing_after(base, cursor, "a record of an earlier journal")?;
                    return done(cursor, items, steps, None, values, op_count);
                }
                Read::Bad { span, why } => {
                    self.nothing_after(base, cursor, &why)?;
                    return done(
                        cursor,
                        items,
                        steps,
                        Some((cursor.tail, span)),
                        values,
                        op_count,
                    );
                }
            }
        }
    }

    /// The payload of the value record at `at` (read before, so it must be good), and
    /// the generation it made.
    pub(crate) fn payload(&self, base: &Base, at: u64) -> Result<(u64, Vec<u8>)> {
        match self.read(at, base.epoch)? {
            Read::Record {
                follows,
                kind: Kind::Value,
                payload,
            } => Ok((follows + 1, payload)),
            _ => Err(self.read_before_lost(at)),
        }
    }

    /// The error for a record at `at`, read before, that no longer reads back.
    fn read_before_lost(&self, at: u64) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            offset: at,
            reason: "a record read before no longer reads back (was the journal changed by \
                     hand?)"
                .into(),
        }
    }

    /// Where reading from the value record at `at` (read before, so it must be good)
    /// starts: before it, at the generation it follows. Reads its head only.
    pub(crate) fn cursor_at(&self, base: &Base, at: u64) -> Result<Cursor> {
        let mut head = [0u8; HEAD];
        let got = self.read_upto(&mut head, at)?;
        if got < HEAD || head[..4] != RECORD_MAGIC || word(&head, 8) != base.epoch {
            return Err(self.read_before_lost(at));
        }
        Ok(Cursor {
            tail: at,
            generation: word(&head, 16),
            last: None,
            ops: false,
        })
    }

    /// With a header that is blank or no longer reads, fails with corruption if any good
    /// record lies in the journal (it may hold acknowledged values); without one, the
    /// journal is a crash's leftover and holds nothing.
    pub(crate) fn no_good_record(&self) -> Result<()> {
        let Some((at, _)) = self.first_good(FIRST, None, 0)? else {
            return Ok(());
        };
        Err(Error::Corrupt {
            path: self.path.clone(),
            offset: 0,
            reason: format!(
                "the journal's header is blank or damaged (both copies), but it holds \
                 records (the first good one at byte {at}); nothing was written. The data \
                 file holds the last snapshot; move the journal away to open the atom at \
                 that snapshot, or keep it for recovery"
            ),
        })
    }

    /// Fails with corruption at `cursor.tail` if a good record of this epoch lies after it.
    fn nothing_after(&self, base: &Base, cursor: Cursor, why: &str) -> Result<()> {
        let from = cursor.tail + BLOCK;
        let Some((found, follows)) = self.first_good(from, Some(base.epoch), cursor.generation)?
        else {
            return Ok(());
        };
        Err(Error::Corrupt {
            path: self.path.clone(),
            offset: cursor.tail,
            reason: format!(
                "{why}, yet a good record (generation {}) follows at byte {found}: an \
                 acknowledged record was damaged. Nothing was written; the data file still \
                 holds the last snapshot",
                follows + 1
            ),
        })
    }

    /// The first good record at a block boundary from `from` on, of epoch `epoch` (any,
    /// with `None`) and following generation `since` or a later one: its offset and the
    /// generation it follows. Heads are read 64 blocks at a time; only a head that looks
    /// right is read whole.
    fn first_good(&self, from: u64, epoch: Option<u64>, since: u64) -> Result<Option<(u64, u64)>> {
        const CHUNK: u64 = 64 * BLOCK;
        let mut at = from;
        let mut chunk = vec![0u8; CHUNK as usize];
        while at + HEAD as u64 <= self.len {
            let got = self.read_upto(&mut chunk, at)?;
            let mut offset = 0;
            while offset + HEAD <= got {
                let head = &chunk[offset..offset + HEAD];
                let its_epoch = word(head, 8);
                if head[..4] == RECORD_MAGIC && epoch.is_none_or(|e| e == its_epoch) {
                    let found = at + offset as u64;
                    if let Read::Record { follows, .. } = self.read(found, its_epoch)?
                        && follows >= since
                    {
                        return Ok(Some((found, follows)));
                    }
                }
                offset += BLOCK as usize;
            }
            if got < chunk.len() {
                break;
            }
            at += CHUNK;
        }
        Ok(None)
    }
}
