//! Reading a journal: records one by one, checked; where they end; corruption.

use enduro_core::{Error, Result};

use super::{
    BLOCK, Base, Cursor, FIRST, HEAD, Journal, KIND_VALUE, RECORD_MAGIC, crc, half, span, word,
};

/// How many bytes of earlier records a scan keeps for [`Scan::earlier`]; a reader that
/// fell further behind sees the records it missed as one change.
const EARLIER_CAP: usize = 64 << 20;

/// What reading records found.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) cursor: Cursor,
    /// The payload of the last record read, if any was.
    pub(crate) last: Option<Vec<u8>>,
    /// When asked for: the records read before the last one, with their generations,
    /// oldest first (none once they pass [`EARLIER_CAP`] bytes).
    pub(crate) earlier: Vec<(u64, Vec<u8>)>,
    /// A bad record at the tail (offset, space it may take): a crash's torn write.
    pub(crate) torn: Option<(u64, u64)>,
}

/// One record, as read.
enum Read {
    Record {
        follows: u64,
        payload: Vec<u8>,
    },
    /// Zeros, or the end of the file: nothing was ever written here.
    Zero,
    /// A good record of another epoch: space reused after a compaction.
    Stale,
    /// Anything else: a torn or damaged record; `span` is the space it may take.
    Bad {
        span: u64,
        why: String,
    },
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
        let kind = half(&bytes, 24);
        if kind != KIND_VALUE {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                offset: at,
                reason: format!(
                    "the record is of kind {kind}, which this version of enduro does not \
                     know (written by a newer enduro?); open it with that version"
                ),
            });
        }
        let follows = word(&bytes, 16);
        bytes.drain(..HEAD);
        Ok(Read::Record {
            follows,
            payload: bytes,
        })
    }

    /// Reads the records of the journal of `base` from `from` on, keeping the last
    /// payload, and with `steps` the earlier ones too. With `check`, a bad record is
    /// followed by a search for a good record of this epoch after it, which makes it
    /// corruption (an error naming the offset).
    pub(crate) fn scan(&self, base: &Base, from: Cursor, check: bool, steps: bool) -> Result<Scan> {
        let mut cursor = from;
        let mut last: Option<Vec<u8>> = None;
        let mut earlier = Vec::new();
        let mut kept = 0;
        let mut steps = steps;
        let done = |cursor, last, earlier, torn| {
            Ok(Scan {
                cursor,
                last,
                earlier,
                torn,
            })
        };
        loop {
            match self.read(cursor.tail, base.epoch)? {
                Read::Record { follows, payload } if follows == cursor.generation => {
                    if let Some(previous) = last.take()
                        && steps
                    {
                        kept += previous.len();
                        earlier.push((cursor.generation, previous));
                        if kept > EARLIER_CAP {
                            earlier = Vec::new();
                            steps = false;
                        }
                    }
                    cursor.last = Some(cursor.tail);
                    cursor.tail += span(payload.len() as u64);
                    cursor.generation += 1;
                    last = Some(payload);
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
                Read::Zero => return done(cursor, last, earlier, None),
                Read::Stale | Read::Bad { .. } if !check => {
                    return done(cursor, last, earlier, None);
                }
                Read::Stale => {
                    self.nothing_after(base, cursor, "a record of an earlier journal")?;
                    return done(cursor, last, earlier, None);
                }
                Read::Bad { span, why } => {
                    self.nothing_after(base, cursor, &why)?;
                    return done(cursor, last, earlier, Some((cursor.tail, span)));
                }
            }
        }
    }

    /// The payload of the record at `at` (read before, so it must be good).
    pub(crate) fn payload(&self, base: &Base, at: u64) -> Result<Vec<u8>> {
        match self.read(at, base.epoch)? {
            Read::Record { payload, .. } => Ok(payload),
            _ => Err(Error::Corrupt {
                path: self.path.clone(),
                offset: at,
                reason: "a record read before no longer reads back (was the journal \
                         changed by hand?)"
                    .into(),
            }),
        }
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
