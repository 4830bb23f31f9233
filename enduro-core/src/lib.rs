//! The core of [enduro](https://docs.rs/enduro): durable atoms, written once for every
//! backend.
//!
//! An [`Atom`] holds one value of any serde type. Every change is a pure function of the
//! current value; it is validated, encoded by a [`Codec`] and committed to a [`Store`]
//! over the [`Version`] it came from, and only then published. Stores only move bytes and
//! versions; the atom's state machine — cache, versions, validator, watches in commit
//! order, the retry loop — lives here, driven by a blocking driver ([`Atom`]) and, with
//! the `async` feature, an async one (`AsyncAtom`).
//!
//! Most users want the `enduro` crate, which picks backends by feature. This crate is for
//! writing a backend of your own.
//!
//! ```
//! use enduro::{Atom, MemStore, Options};
//!
//! let atom = Atom::open(MemStore::new(), 0u64, Options::new())?;
//! atom.swap(|n| n + 1)?;
//! assert_eq!(*atom.deref(), 1);
//! # Ok::<(), enduro::Error>(())
//! ```
//!
//! Features: `async` (the async driver, `AsyncAtom` over an `AsyncStore`, and `Blocking`,
//! which gives any async store a blocking `Atom`) and `testing` (the fault-injecting
//! store of the `testing` module, for tests only). Both are off by default.
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod apply;
#[cfg(feature = "async")]
mod async_atom;
mod atom;
mod background;
#[cfg(feature = "async")]
mod blocking;
mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod formats;
#[cfg(any(test, feature = "conformance"))]
mod lazy_deep;
mod live;
mod migrate;
#[cfg(feature = "async")]
mod off_thread;
mod options;
mod protocol;
mod reentry;
mod roundtrip;
mod state;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod value;

pub use apply::Apply;
#[cfg(feature = "async")]
pub use async_atom::{AsyncAtom, AsyncStore, BoxFuture, Deferred};
pub use atom::Atom;
#[cfg(feature = "async")]
pub use blocking::Blocking;
pub use codec::{Codec, Json};
pub use error::{CodecError, Error, Result};
#[cfg(feature = "cbor")]
pub use formats::Cbor;
#[cfg(feature = "msgpack")]
pub use formats::MessagePack;
#[cfg(feature = "postcard")]
pub use formats::Postcard;
#[cfg(feature = "ron")]
pub use formats::Ron;
#[cfg(feature = "toml")]
pub use formats::Toml;
pub use migrate::Migrations;
#[cfg(feature = "async")]
pub use off_thread::OffThread;
pub use options::{CommitMode, Options, Validation, Validator};
pub use store::{
    Committed, Encoder, Nudge, Observed, OpRecord, Replay, Snapshot, Step, Store, Subscription,
    Version, new_incarnation,
};
pub use value::Value;
