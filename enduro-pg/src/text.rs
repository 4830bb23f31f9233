//! The `value` column's text on its way in and out, with as few copies as tokio-postgres
//! allows.
//!
//! Sending a value, tokio-postgres copies every parameter into the statement's Bind
//! message, and its connection copies that message into its write buffer; neither copy
//! can be avoided from outside. What can be: the encoded value living on beside them.
//! [`Text`] hands a [`LARGE`] value to the driver once and frees it as soon as it is in
//! the Bind message, so at most two copies of it exist at any time, never three.
//!
//! The driver keeps every buffer at the largest size its connection ever needed, for as
//! long as the connection lives: after a large value, a pooled connection would go on
//! holding about that much memory (its Bind buffer and write buffer, or its read buffer)
//! for nothing. So a connection that carried a large value, either way, is closed instead
//! of going back to the pool ([`Text::is_large`], [`answer_is_large`]); the next statement
//! takes a new one, which costs a few milliseconds next to moving that many bytes.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// The size from which a value counts as large: handed over once, and its connection
/// closed after it.
pub(crate) const LARGE: usize = 8 << 20;

/// The encoded value as the `value` parameter, sent as `String` would be (same types
/// accepted, same bytes written).
///
/// A value of [`LARGE`] bytes or more is given to the driver once and freed as soon as it
/// is copied into the Bind message. Should the statement be sent again (the
/// [`Runner`](crate::query::Runner) retries one that surely ran nothing), there is nothing
/// left to send: that attempt fails before sending anything, and
/// [`asked_again`](Text::asked_again) says so. A smaller value stays, and can be sent
/// any number of times.
pub(crate) struct Text {
    /// The text, until a large one is handed over.
    text: Mutex<Option<String>>,
    len: usize,
    /// A large value was asked for after it had been handed over.
    asked_again: AtomicBool,
}

impl Text {
    pub(crate) fn new(text: String) -> Self {
        Text {
            len: text.len(),
            text: Mutex::new(Some(text)),
            asked_again: AtomicBool::new(false),
        }
    }

    /// Whether it is sent once only, and its connection closed afterwards.
    pub(crate) fn is_large(&self) -> bool {
        self.len >= LARGE
    }

    /// Whether the driver asked for the value again after it had been handed over (and
    /// freed): that attempt failed before sending anything.
    pub(crate) fn asked_again(&self) -> bool {
        self.asked_again.load(Ordering::Relaxed)
    }

    /// Whether a large value was handed over, so that it cannot be sent again.
    pub(crate) fn spent(&self) -> bool {
        self.slot().is_none()
    }

    /// Why a statement that must be sent again cannot be: the value was handed over.
    pub(crate) fn not_sent_again(&self) -> String {
        format!(
            "PostgreSQL refused the statement without running it (its prepared form no \
             longer matched the table, or the table was dropped), and a value this large \
             ({} bytes) is handed to the driver once only, so it was not sent again; nothing \
             was written, and the next try prepares the statement afresh",
            self.len
        )
    }

    fn slot(&self) -> MutexGuard<'_, Option<String>> {
        self.text.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the value itself: it can be huge, and it is the user's data.
        f.debug_struct("Text")
            .field("len", &self.len)
            .field("held", &self.slot().is_some())
            .finish()
    }
}

impl ToSql for Text {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let mut slot = self.slot();
        let Some(text) = slot.as_deref() else {
            self.asked_again.store(true, Ordering::Relaxed);
            return Err(format!(
                "the value ({} bytes) was already handed to the driver once, and a value \
                 this large is not kept for a second try",
                self.len
            )
            .into());
        };
        let written = <&str as ToSql>::to_sql(&text, ty, out)?;
        if self.is_large() {
            // The Bind message has it now: free this copy before the connection makes
            // its own.
            let freed = slot.take();
            drop(slot);
            drop(freed);
        }
        Ok(written)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
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

    /// What tokio-postgres writes for `param` as a `ty` parameter, or its error.
    fn sent(param: &Text, ty: &Type) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        match param.to_sql_checked(ty, &mut out) {
            Ok(IsNull::No) => Ok(out.to_vec()),
            Ok(IsNull::Yes) => Err("NULL".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn writes_what_a_string_writes() {
        for ty in [Type::TEXT, Type::VARCHAR, Type::BPCHAR] {
            let mut expected = BytesMut::new();
            "{\"a\":\"é\"}"
                .to_owned()
                .to_sql_checked(&ty, &mut expected)
                .unwrap();
            let text = Text::new("{\"a\":\"é\"}".to_owned());
            assert_eq!(sent(&text, &ty).unwrap(), expected.to_vec());
        }
    }

    #[test]
    fn refuses_the_types_a_string_refuses() {
        let text = Text::new("1".to_owned());
        for ty in [Type::INT8, Type::BYTEA, Type::JSONB] {
            assert_eq!(
                <Text as ToSql>::accepts(&ty),
                <String as ToSql>::accepts(&ty)
            );
            assert!(sent(&text, &ty).is_err(), "{ty}");
        }
        assert!(!text.asked_again(), "a refused type is not a second try");
    }

    #[test]
    fn a_small_value_can_be_sent_again() {
        let text = Text::new("[1,2,3]".to_owned());
        assert!(!text.is_large());
        for _ in 0..3 {
            assert_eq!(sent(&text, &Type::TEXT).unwrap(), b"[1,2,3]");
        }
        assert!(!text.spent());
        assert!(!text.asked_again());
    }

    #[test]
    fn a_large_value_is_freed_once_sent_and_a_second_try_fails() {
        let value = "x".repeat(LARGE);
        let text = Text::new(value.clone());
        assert!(text.is_large());
        assert!(format!("{text:?}").contains("held: true"));
        assert_eq!(sent(&text, &Type::TEXT).unwrap(), value.as_bytes());
        assert!(
            format!("{text:?}").contains("held: false"),
            "freed once sent"
        );
        assert!(text.spent());
        assert!(!text.asked_again());
        let again = sent(&text, &Type::TEXT).unwrap_err();
        assert!(again.contains("already handed to the driver"), "{again}");
        assert!(text.asked_again());
        assert!(text.not_sent_again().contains(&format!("({LARGE} bytes)")));
    }

    #[test]
    fn just_below_large_is_kept() {
        let text = Text::new("y".repeat(LARGE - 1));
        assert!(!text.is_large());
        sent(&text, &Type::TEXT).unwrap();
        assert_eq!(sent(&text, &Type::TEXT).unwrap().len(), LARGE - 1);
    }

    #[test]
    fn debug_never_shows_the_value() {
        let text = Text::new("secret".to_owned());
        assert!(!format!("{text:?}").contains("secret"));
    }
}
