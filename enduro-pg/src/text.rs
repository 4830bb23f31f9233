//! The `value` column's text on its way in and out, with as few copies as tokio-postgres
//! allows.
//!
//! Sent as a statement parameter, a value is copied into the statement's Bind message,
//! and the connection copies that whole message into its write buffer: with the old and
//! the new value a swap holds and the encoded bytes, that is five copies at the peak. So a
//! [`LARGE`] value goes another way: COPY streams it in [`CHUNK`]s into a temporary
//! table made for the transaction, and the statement reads it from there
//! ([`Runner::query_opt_staged`](crate::query::Runner::query_opt_staged)); the driver
//! never holds more than a chunk of it, and the peak is the two values and the encoded
//! bytes.
//!
//! The driver keeps every buffer at the largest size its connection ever needed, for as
//! long as the connection lives: after a large value, a pooled connection would go on
//! holding about that much memory (its read buffer, or on the fallback path its Bind and
//! write buffers) for nothing. So a connection that carried a large value, either way, is
//! closed instead of going back to the pool ([`answer_is_large`]); the next statement
//! takes a new one, which costs a few milliseconds next to moving that many bytes.

use std::error::Error;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

/// The size from which a value counts as large: streamed with COPY, and its connection
/// closed after it.
pub(crate) const LARGE: usize = 8 << 20;

/// How much of a large value goes to the driver at a time.
pub(crate) const CHUNK: usize = 256 << 10;

/// The start of a binary COPY stream of one row of one column holding `len` bytes: the
/// signature, no flags, no header extension, one field, its length.
pub(crate) fn copy_head(len: i32) -> Bytes {
    let mut head = BytesMut::with_capacity(25);
    head.put_slice(b"PGCOPY\n\xff\r\n\0");
    head.put_u32(0);
    head.put_u32(0);
    head.put_i16(1);
    head.put_i32(len);
    head.freeze()
}

/// The end of a binary COPY stream.
pub(crate) fn copy_tail() -> Bytes {
    Bytes::from_static(&[0xff, 0xff])
}

/// A text column's size, read without copying or checking it.
struct Size(usize);

impl<'a> FromSql<'a> for Size {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Size, Box<dyn Error + Sync + Send>> {
        Ok(Size(raw.len()))
    }

    fn accepts(ty: &Type) -> bool {
        <&str as FromSql>::accepts(ty)
    }
}

/// Whether `row` (an answer; `None` for none) holds a [`LARGE`] value in `column`.
pub(crate) fn answer_is_large(row: Option<&Row>, column: usize) -> bool {
    row.and_then(|row| row.try_get::<_, Option<Size>>(column).ok())
        .flatten()
        .is_some_and(|Size(len)| len >= LARGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_framing_is_postgresqls_binary_format() {
        let head = copy_head(3);
        assert_eq!(&head[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&head[11..19], &[0; 8], "no flags, no header extension");
        assert_eq!(&head[19..21], &[0, 1], "one field");
        assert_eq!(&head[21..], &[0, 0, 0, 3], "of three bytes");
        assert_eq!(&copy_tail()[..], &[0xff, 0xff], "-1: no more rows");
    }
}
