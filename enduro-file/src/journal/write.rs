//! Writing a journal: making it, starting it over, growing it with zeros, appending a
//! record with one flush, cutting a torn tail.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use enduro_core::{Error, Result};

use super::{
    BLOCK, Base, COPY, COPY_B, Cursor, FIRST, GROW, HEAD, Journal, KIND_OPS, KIND_VALUE, Kind,
    RECORD_MAGIC, crc, span,
};

impl Journal {
    /// Makes a new journal at `path` (none is there: the caller removed any) with `base`
    /// as its header and at least `room` bytes of zeros for records, flushed, with the
    /// file's mode `mode`. The caller flushes the directory.
    pub(crate) fn create(path: &Path, base: &Base, room: u64, mode: u32) -> Result<Journal> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| Error::io("create the journal", path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("inspect the journal", path, e))?;
        let mut journal = Journal {
            file,
            path: path.to_path_buf(),
            len: 0,
            id: (meta.dev(), meta.ino()),
            writable: true,
        };
        let mut block = vec![0u8; BLOCK as usize];
        let copy = base.encode();
        block[..COPY].copy_from_slice(&copy);
        block[COPY_B as usize..COPY_B as usize + COPY].copy_from_slice(&copy);
        journal
            .file
            .write_all_at(&block, 0)
            .map_err(|e| Error::io("write the journal's header", path, e))?;
        journal.len = BLOCK;
        journal.grow_to(FIRST + room)?;
        Ok(journal)
    }

    /// Starts the journal over on `base`: copy A, flushed, then copy B, flushed. Records
    /// of the old epoch stay where they are and no longer count.
    pub(crate) fn restart(&mut self, base: &Base) -> Result<()> {
        let copy = base.encode();
        if self.len < BLOCK {
            // Shorter than its header block (a crash while it was being made): the
            // block is filled first, so that growing it later writes no zeros over the
            // header.
            self.zero(self.len, BLOCK)
                .map_err(|e| Error::io("write the journal's header", &self.path, e))?;
            self.len = BLOCK;
        }
        for at in [0, COPY_B] {
            self.file
                .write_all_at(&copy, at)
                .map_err(|e| Error::io("write the journal's header", &self.path, e))?;
            self.sync()?;
        }
        Ok(())
    }

    /// Zeroes `span` bytes at `at` (a torn tail, cut at open) and flushes.
    pub(crate) fn cut(&self, at: u64, span: u64) -> Result<()> {
        let end = (at + span).min(self.len);
        self.zero(at, end)
            .map_err(|e| Error::io("cut the torn tail of the journal", &self.path, e))?;
        self.sync()
    }

    fn zero(&self, from: u64, to: u64) -> std::io::Result<()> {
        // Made when needed (zeroed pages cost nothing until written), not a static that
        // would add its 64 KiB to every binary.
        let zeros = vec![0u8; to.saturating_sub(from).min(64 * 1024) as usize];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Grows the file with zeros to at least `len` bytes (in steps of at least
    /// [`GROW`]), and flushes it with its new size.
    fn grow_to(&mut self, len: u64) -> Result<()> {
        if len <= self.len {
            return Ok(());
        }
        let target = (len.max(self.len + GROW)).div_ceil(BLOCK) * BLOCK;
        let grown = self
            .zero(self.len, target)
            .map_err(|e| Error::io("grow the journal (writing zeros)", &self.path, e))
            .and_then(|()| {
                self.file
                    .sync_all()
                    .map_err(|e| Error::io("fsync the journal", &self.path, e))
            });
        if grown.is_err() {
            // Zeros that are not flushed must not take records (their flush would carry
            // the size change): cut them off again (a full disk), best effort. Until a
            // growth is flushed whole, `len` stays where the flushed zeros end.
            let _ = self.file.set_len(self.len);
            return grown;
        }
        self.len = target;
        Ok(())
    }

    /// Appends `record` (a [`HEAD`]-byte gap, then the payload) of kind `kind` after
    /// `cursor`, as the record following its generation in the journal of `base`, and
    /// flushes it once.
    /// On an error, the record is not in the journal: a failed flush zeroes it again
    /// (flushed), and when even that fails the error is [`Error::Uncertain`].
    pub(crate) fn append(
        &mut self,
        resource: &str,
        base: &Base,
        cursor: Cursor,
        record: &mut [u8],
        kind: Kind,
    ) -> Result<Cursor> {
        let len = (record.len() - HEAD) as u64;
        let span = span(len);
        // Room for this record and as much again, so that the next ones find zeros.
        self.grow_to(cursor.tail + 2 * span)?;
        record[..4].copy_from_slice(&RECORD_MAGIC);
        record[8..16].copy_from_slice(&base.epoch.to_le_bytes());
        record[16..24].copy_from_slice(&cursor.generation.to_le_bytes());
        let (code, count) = match kind {
            Kind::Value => (KIND_VALUE, 0),
            Kind::Ops(count) => (KIND_OPS, count),
        };
        record[24..28].copy_from_slice(&code.to_le_bytes());
        record[28..32].copy_from_slice(&count.to_le_bytes());
        record[32..40].copy_from_slice(&len.to_le_bytes());
        record[40..48].fill(0);
        let check = crc(&record[8..]);
        record[4..8].copy_from_slice(&check.to_le_bytes());
        let written = self
            .file
            .write_all_at(record, cursor.tail)
            .map_err(|e| Error::io("append to the journal", &self.path, e))
            .and_then(|()| self.sync());
        if let Err(e) = written {
            // Take the record back out, so the failed commit changed nothing.
            let undone = self
                .zero(cursor.tail, cursor.tail + span)
                .and_then(|()| self.file.sync_data());
            return Err(match undone {
                Ok(()) => e,
                Err(again) => Error::Uncertain {
                    resource: resource.to_owned(),
                    message: format!(
                        "{e}; taking the record back out of the journal failed too \
                         ({again}), so it may be there"
                    ),
                    source: Some(Box::new(e)),
                },
            });
        }
        let value = kind == Kind::Value;
        Ok(Cursor {
            tail: cursor.tail + span,
            generation: cursor.generation + kind.generations(),
            last: if value {
                Some(cursor.tail)
            } else {
                cursor.last
            },
            ops: !value,
        })
    }
}
