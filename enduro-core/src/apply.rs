//! Ops: changes named by the value type, stored as themselves where the store can.

use std::sync::{Arc, Weak};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::Core;
use crate::value::Value;

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
/// The atom keeps the current value for [`deref`](crate::Atom::deref) until a change is
/// durable, so an op cannot change it in place. Instead, the atom keeps the value that
/// was current before the last op: when nobody else holds it any more (no `deref` result
/// kept, watches done), the next op brings it up to date with the last op and applies
/// itself to it — two applies, no copy. Otherwise (someone holds it, a swap or another
/// writer's commit came in between, or several ops share one commit) the op is applied
/// to a copy of the current value. So a plain `BTreeMap` costs a copy only when
/// something else holds the old value, at the price of keeping two values in memory;
/// a persistent map (`imbl::OrdMap`, `imbl::HashMap`) copies in constant time and shares
/// most of its memory between the two. See the README's "Appropriate usage".
///
/// Ops are encoded with the atom's codec: with JSON (the default) as themselves; with
/// another codec by way of their JSON data (`serde_json::Value`), which needs a
/// self-describing format. An op that does not read back as itself is refused before
/// anything is written.
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

/// An `apply` call's op: encoded as the store keeps it (when it keeps ops), and as the
/// atom applies it.
pub(crate) type Prepared<Op> = (Option<Arc<[u8]>>, Arc<Op>);

/// What an `apply` call commits: with `keep` (the atom keeps ops, and commits them),
/// the op encoded as the store keeps it, and the op decoded back from those bytes — the
/// one to apply, as a replay will; without, the op as it is.
pub(crate) fn prepare<T: Value + Apply>(
    core: &Core<T>,
    op: T::Op,
    keep: bool,
) -> crate::Result<Prepared<T::Op>> {
    if !keep {
        return Ok((None, Arc::new(op)));
    }
    let (bytes, op) = core.encode_op(&op)?;
    Ok((Some(bytes), Arc::new(op)))
}

/// The atom's last op, kept with the value it was applied to: see [`next`].
struct Spare<T: Apply> {
    /// The value before the op (current until the op's value was published).
    value: Arc<T>,
    op: Arc<T::Op>,
    /// The value the op made.
    made: Weak<T>,
}

/// `current` (the batch's latest value) with `op` applied. When `current` is the value
/// the last op made, and the value before it is no longer held by anyone but the spare,
/// that one is brought up to date with the last op and takes this one: no copy of the
/// value. Otherwise `current` is copied.
pub(crate) fn next<T: Value + Apply>(core: &Core<T>, current: &T, op: &Arc<T::Op>) -> Arc<T>
where
    T::Op: Send + Sync,
{
    let recycled = core
        .take_spare()
        .and_then(|spare| spare.downcast::<Spare<T>>().ok())
        .filter(|spare| std::ptr::eq(spare.made.as_ptr(), current))
        .and_then(|spare| {
            let Spare { value, op, .. } = *spare;
            let mut value = Arc::try_unwrap(value).ok()?;
            value.apply(&op);
            Some(value)
        });
    let mut next = recycled.unwrap_or_else(|| current.clone());
    next.apply(op);
    let next = Arc::new(next);
    // Only the published value becomes a spare: a batch's pending values are held by
    // the batch until it settles.
    let (published, _) = core.current();
    if std::ptr::eq(&*published, current) {
        core.keep_spare(Box::new(Spare {
            value: published,
            op: Arc::clone(op),
            made: Arc::downgrade(&next),
        }));
    }
    next
}
