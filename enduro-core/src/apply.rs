//! Ops: changes named by the value type, stored as themselves where the store can.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that names its own changes: an operation type and how to apply one.
///
/// [`Atom::apply`](crate::Atom::apply) is a swap whose change is an op. Where the store
/// keeps ops (a file atom in journal mode opened with `ops()`), the journal stores the op,
/// encoded with the atom's codec, instead of the whole value: a one-key change to a large
/// map costs about as much as the key. Opening replays the ops after the last snapshot, and
/// other processes apply the ops they have not seen, so `apply` must be **deterministic**:
/// the same op on the same value always gives the same value, in every process and every
/// version of your program that may read the journal. It must not read the clock, a
/// random number or anything outside `self` and `op`.
///
/// Each op is applied to a copy of the current value (the atom keeps the current value
/// for [`deref`](crate::Atom::deref) until the change is durable), so pick a value type
/// whose copy is cheap when the value is large: a persistent map (`imbl::OrdMap`,
/// `imbl::HashMap`) copies in constant time, where a `BTreeMap` of 190,000 entries takes
/// milliseconds. See the README's "Appropriate usage".
///
/// Ops travel as `serde_json::Value` on their way to and from the codec, so they need a
/// self-describing codec (JSON, the default, is one) and must survive that round trip:
/// an op that does not read back as itself is refused before anything is written.
///
/// ```
/// use std::collections::BTreeMap;
/// use enduro::{Apply, MemStore, Atom, Options};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Default, Serialize, Deserialize)]
/// struct Book(BTreeMap<String, String>);
///
/// #[derive(Serialize, Deserialize)]
/// enum Edit {
///     Add { name: String, email: String },
///     Remove { name: String },
/// }
///
/// impl Apply for Book {
///     type Op = Edit;
///     fn apply(&mut self, op: &Edit) {
///         match op {
///             Edit::Add { name, email } => {
///                 self.0.insert(name.clone(), email.clone());
///             }
///             Edit::Remove { name } => {
///                 self.0.remove(name);
///             }
///         }
///     }
/// }
///
/// let book = Atom::open(MemStore::new(), Book::default(), Options::new().ops())?;
/// book.apply(Edit::Add { name: "ada".into(), email: "ada@example.org".into() })?;
/// book.apply(Edit::Remove { name: "ada".into() })?;
/// assert!(book.deref().0.is_empty());
/// # Ok::<(), enduro::Error>(())
/// ```
pub trait Apply: Clone {
    /// The type of one change: any serde type.
    type Op: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Applies `op` to the value. Deterministic; a panic fails the `apply` call that made
    /// it and changes nothing.
    fn apply(&mut self, op: &Self::Op);
}
