//! The async driver: [`AsyncAtom`] over an [`AsyncStore`], for tokio services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::error::Result;
use crate::options::Options;
use crate::state::{Core, Opening, Outcome, check, encode};
use crate::store::{Committed, Observed, Snapshot, Version};
use crate::value::Value;

/// A boxed future that is `Send`, as [`AsyncStore`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An async backend: the same duties as [`Store`](crate::Store), with futures. The value
/// arrives already encoded, since an async store sends it over the network anyway.
///
/// ```
/// use enduro_core::{AsyncStore, BoxFuture, Committed, Observed, Result, Snapshot, Version};
///
/// /// An async store that forwards to a blocking one.
/// struct Forward(enduro_mem::MemStore);
///
/// impl AsyncStore for Forward {
///     fn resource(&self) -> String { enduro_core::Store::resource(&self.0) }
///     fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>> {
///         Box::pin(async move { enduro_core::Store::load(&self.0) })
///     }
///     fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>> {
///         Box::pin(async move { enduro_core::Store::check(&self.0, known) })
///     }
///     fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>> {
///         Box::pin(async move {
///             enduro_core::Store::commit(&self.0, expected, &mut |out| {
///                 out.write_all(&bytes).map_err(|e| enduro_core::Error::io("write", "memory", e))
///             })
///         })
///     }
///     fn release(&self) -> BoxFuture<'_, Result<()>> {
///         Box::pin(async move { enduro_core::Store::release(&self.0) })
///     }
/// }
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let atom = enduro_core::AsyncAtom::open(Forward(enduro_mem::MemStore::new()), 1, Default::default()).await?;
/// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
/// # Ok::<(), enduro_core::Error>(())
/// # }).unwrap();
/// ```
pub trait AsyncStore: Send + Sync + 'static {
    /// Names the resource for error messages. Never includes a password.
    fn resource(&self) -> String;
    /// Reads the stored bytes and their version; `None` when the resource does not exist.
    fn load(&self) -> BoxFuture<'_, Result<Option<Snapshot>>>;
    /// Tells whether the resource is still at version `known`, cheaply when it is.
    fn check(&self, known: Version) -> BoxFuture<'_, Result<Observed>>;
    /// Durably stores `bytes` if and only if the resource is at version `expected`.
    fn commit(&self, expected: Version, bytes: Vec<u8>) -> BoxFuture<'_, Result<Committed>>;
    /// Deletes the resource.
    fn release(&self) -> BoxFuture<'_, Result<()>>;
}

/// The async twin of [`Atom`](crate::Atom): same semantics, same method names; the ones
/// that touch storage are `async`. Clone, `Send` and `Sync`, with `Send` futures, so it
/// can be shared across spawned tasks. It never blocks the runtime while waiting for
/// storage.
///
/// ```
/// # use enduro_core::{AsyncAtom, AsyncStore};
/// # fn demo<S: AsyncStore>(store: S) -> impl std::future::Future<Output = enduro_core::Result<()>> + Send {
/// # async move {
/// let atom = AsyncAtom::open(store, 0u64, Default::default()).await?;
/// let task = {
///     let atom = atom.clone();
///     async move { atom.swap(|n| n + 1).await }
/// };
/// task.await?;
/// assert_eq!(*atom.deref(), 1);
/// # Ok(()) } }
/// ```
pub struct AsyncAtom<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    core: Core<T>,
    store: Box<dyn AsyncStore>,
    committing: Mutex<()>,
}

impl<T> Clone for AsyncAtom<T> {
    fn clone(&self) -> Self {
        AsyncAtom {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Value> fmt::Debug for AsyncAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncAtom")
            .field("resource", &self.inner.core.resource())
            .field("released", &self.is_released())
            .finish_non_exhaustive()
    }
}

impl<T: Value> AsyncAtom<T> {
    /// Opens an atom on `store`, as [`Atom::open`](crate::Atom::open) does.
    pub async fn open<S: AsyncStore>(store: S, init: T, options: Options<T>) -> Result<Self> {
        let resource = store.resource();
        let (value, version) = loop {
            match Core::opening(&resource, &options, store.load().await?)? {
                Opening::Existing(value, version) => break (value, version),
                Opening::Create(expected) => {
                    check(options.validator.as_ref(), &init)?;
                    let mut bytes = Vec::new();
                    encode(&resource, &options, &init, &mut bytes)?;
                    match store.commit(expected, bytes).await? {
                        Committed::Done(version) => break (init, version),
                        Committed::Conflict => continue,
                    }
                }
            }
        };
        Ok(AsyncAtom {
            inner: Arc::new(Inner {
                core: Core::new(resource, options, Arc::new(value), version),
                store: Box::new(store),
                committing: Mutex::new(()),
            }),
        })
    }

    /// The last committed value this atom knows.
    #[allow(clippy::should_implement_trait)]
    pub fn deref(&self) -> Arc<T> {
        self.inner.core.value()
    }

    /// Replaces the value with `f(current)`; see [`Atom::swap`](crate::Atom::swap).
    pub async fn swap(&self, f: impl FnMut(&T) -> T + Send) -> Result<Arc<T>> {
        self.swap_vals(f).await.map(|(_, new)| new)
    }

    /// Like [`swap`](AsyncAtom::swap), returning `(old, new)`.
    pub async fn swap_vals(&self, mut f: impl FnMut(&T) -> T + Send) -> Result<(Arc<T>, Arc<T>)> {
        self.transact(move |current| Some(Arc::new(f(current))))
            .await
            .map(|o| (o.old, o.new))
    }

    /// Sets the value; see [`Atom::reset`](crate::Atom::reset).
    pub async fn reset(&self, value: T) -> Result<Arc<T>> {
        self.reset_vals(value).await.map(|(_, new)| new)
    }

    /// Like [`reset`](AsyncAtom::reset), returning `(old, new)`.
    pub async fn reset_vals(&self, value: T) -> Result<(Arc<T>, Arc<T>)> {
        let value = Arc::new(value);
        self.transact(move |_| Some(Arc::clone(&value)))
            .await
            .map(|o| (o.old, o.new))
    }

    /// Sets the value only if it equals `expected`; see
    /// [`Atom::compare_and_set`](crate::Atom::compare_and_set).
    pub async fn compare_and_set(&self, expected: &T, value: T) -> Result<bool>
    where
        T: PartialEq,
    {
        let value = Arc::new(value);
        let mut matched = false;
        self.transact(|current| {
            matched = current == expected;
            matched.then(|| Arc::clone(&value))
        })
        .await?;
        Ok(matched)
    }

    /// Adds or replaces a watch; see [`Atom::add_watch`](crate::Atom::add_watch).
    pub fn add_watch(
        &self,
        key: impl Into<String>,
        watch: impl Fn(&T, &T) + Send + Sync + 'static,
    ) {
        self.inner.core.add_watch(key.into(), Arc::new(watch));
    }

    /// Removes a watch; returns whether there was one.
    pub fn remove_watch(&self, key: &str) -> bool {
        self.inner.core.remove_watch(key)
    }

    /// Sets the validator; fails with [`Error::Invalid`](crate::Error::Invalid) if the current value fails it.
    pub fn set_validator(
        &self,
        validator: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Result<()> {
        self.inner.core.set_validator(Arc::new(validator))
    }

    /// Removes the validator.
    pub fn clear_validator(&self) {
        self.inner.core.clear_validator();
    }

    /// Picks up other writers' commits; see [`Atom::refresh`](crate::Atom::refresh).
    pub async fn refresh(&self) -> Result<Arc<T>> {
        self.transact(|_| None).await.map(|o| o.new)
    }

    /// Deletes the backing resource; see [`Atom::release`](crate::Atom::release).
    pub async fn release(&self) -> Result<()> {
        let _committing = self.inner.committing.lock().await;
        if self.is_released() {
            return Ok(());
        }
        self.inner.store.release().await?;
        self.inner.core.mark_released();
        Ok(())
    }

    /// Whether the atom was released.
    pub fn is_released(&self) -> bool {
        self.inner.core.is_released()
    }

    /// Names the backing resource.
    pub fn resource(&self) -> &str {
        self.inner.core.resource()
    }

    /// The version of the value [`deref`](AsyncAtom::deref) returns.
    pub fn version(&self) -> Version {
        self.inner.core.current().1
    }

    /// The retry loop of [`Atom`](crate::Atom), with awaits.
    async fn transact(
        &self,
        mut decide: impl FnMut(&T) -> Option<Arc<T>> + Send,
    ) -> Result<Outcome<T>> {
        let Inner {
            core,
            store,
            committing,
        } = &*self.inner;
        let outcome = async {
            let _committing = committing.lock().await;
            core.ensure_live()?;
            let (mut current, mut version) = core.current();
            match store.check(version).await? {
                Observed::Unchanged => {}
                Observed::Changed(snapshot) => (current, version) = core.adopt(snapshot)?,
                Observed::Missing => return Err(core.mark_released()),
            }
            loop {
                let Some(new) = decide(&current) else {
                    return Ok(Outcome {
                        old: Arc::clone(&current),
                        new: current,
                    });
                };
                core.validate(&new)?;
                let bytes = core.encode_to_vec(&new)?;
                match store.commit(version, bytes).await? {
                    Committed::Done(committed) => {
                        let old = core.publish(Arc::clone(&new), committed);
                        return Ok(Outcome { old, new });
                    }
                    Committed::Conflict => match store.load().await? {
                        Some(snapshot) => (current, version) = core.adopt(snapshot)?,
                        None => return Err(core.mark_released()),
                    },
                }
            }
        }
        .await;
        core.deliver();
        outcome
    }
}
