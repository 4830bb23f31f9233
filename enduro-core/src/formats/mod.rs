//! The formats beside JSON, each behind the feature of its name: [`Toml`](crate::Toml)
//! (`toml`), [`Ron`](crate::Ron) (`ron`), [`Cbor`](crate::Cbor) (`cbor`),
//! [`MessagePack`](crate::MessagePack) (`msgpack`) and [`Postcard`](crate::Postcard)
//! (`postcard`).
//!
//! Each encodes through the round-trip guard with its own rules (what its reader reads
//! back, measured with the crate version enduro builds against) and each reads with a bound
//! on the stack: the format's own recursion limit where it has one that holds, enduro's
//! [`bounded`] adapter where it has none (postcard) or one with holes (rmp-serde).

#[cfg(any(feature = "msgpack", feature = "postcard"))]
mod bounded;
#[cfg(feature = "cbor")]
mod cbor;
#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "postcard")]
mod postcard;
#[cfg(feature = "ron")]
mod ron;
#[cfg(all(
    test,
    feature = "toml",
    feature = "ron",
    feature = "cbor",
    feature = "msgpack",
    feature = "postcard"
))]
mod tests;
#[cfg(feature = "toml")]
mod toml;

#[cfg(feature = "cbor")]
pub use self::cbor::Cbor;
#[cfg(feature = "msgpack")]
pub use self::msgpack::MessagePack;
#[cfg(feature = "postcard")]
pub use self::postcard::Postcard;
#[cfg(feature = "ron")]
pub use self::ron::Ron;
#[cfg(feature = "toml")]
pub use self::toml::Toml;

use std::fmt::Display;

use crate::error::CodecError;

/// An error of a format crate (`reader`: "ciborium"), saying who said it.
#[allow(dead_code)] // with no format feature on
fn said(who: &str, error: impl Display) -> CodecError {
    format!("{who}: {error}").into()
}

/// The error for data followed by `extra` bytes that belong to no value.
#[allow(dead_code)] // with no format feature on
fn trailing(format: &str, extra: usize) -> CodecError {
    format!(
        "{extra} bytes follow the {format} value: the data is not one {format} value (damaged, or written by something else)"
    )
    .into()
}
