//! [`file_atom`] and the [`FileAtom`] builder.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use enduro_core::{Apply, Atom, Codec, CommitMode, Options, Result, Validation, Value};

use crate::store::{FileStore, FileStoreBuilder};

/// Opens a file atom at `path` holding `init` if the file is missing or blank; otherwise
/// the stored value (and `init` is ignored). Missing parent directories are created.
///
/// The path is resolved once, here: symlinks in its directories and at its end are
/// followed, and the atom keeps committing to the file they led to. Anything but a
/// regular file there (a directory, a FIFO, a device) is refused.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let path = dir.join("nested/dirs/state.json");
/// let atom = enduro::file_atom(vec![1, 2], &path)?;
/// drop(atom);
/// let again = enduro::file_atom(Vec::<i32>::new(), &path)?;
/// assert_eq!(*again.deref(), [1, 2]);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn file_atom<T: Value>(init: T, path: impl AsRef<Path>) -> Result<Atom<T>> {
    FileAtom::builder(path).open(init)
}

/// Opens an async file atom at `path`, as [`file_atom`] opens a blocking one: an
/// [`AsyncAtom`](enduro_core::AsyncAtom) whose every file-system call (opening, waiting for
/// another process's lock, writing, fsync) runs on tokio's blocking thread pool, never on
/// the runtime's own threads. Call it inside a tokio runtime. Feature `async`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let hits = enduro::file_atom_async(0u64, dir.join("hits.json")).await?;
/// hits.swap(|n| n + 1).await?;
/// assert_eq!(std::fs::read_to_string(dir.join("hits.json"))?, "1");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "async")]
pub async fn file_atom_async<T: Value>(
    init: T,
    path: impl AsRef<Path>,
) -> Result<enduro_core::AsyncAtom<T>> {
    FileAtom::builder(path).open_async(init).await
}

/// Builds file atoms with options: codec, pretty JSON, validator, commit mode, pending
/// dir, lock timeout. Every order of the setters gives the same atom.
///
/// ```
/// use std::time::Duration;
/// use enduro::FileAtom;
///
/// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
/// let atom = FileAtom::builder(dir.join("limits.json"))
///     .pretty(true)
///     .validator(|n: &u32| *n <= 100)
///     .lock_timeout(Duration::from_secs(5))
///     .open(10)?;
/// assert!(atom.reset(1000).is_err());
/// assert_eq!(std::fs::read_to_string(dir.join("limits.json"))?, "10\n");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileAtom<T> {
    store: FileStoreBuilder,
    options: Options<T>,
}

impl<T> fmt::Debug for FileAtom<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileAtom")
            .field("store", &self.store)
            .field("options", &self.options)
            .finish()
    }
}

impl<T: Value + Apply> FileAtom<T> {
    /// Stores ops, not whole values (see [`Apply`] and
    /// [`Options::ops`](enduro_core::Options::ops)): in journal mode, each
    /// [`apply`](Atom::apply) appends its op to the journal, and the value is written only
    /// when the journal is compacted, so a one-key change to a large map costs about what
    /// the key costs. In plain mode `apply` rewrites the value, as `swap` does. Needed to
    /// open a journal that holds ops, which the atom then replays.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use enduro::{Apply, FileAtom};
    ///
    /// #[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
    /// struct Scores(BTreeMap<String, u32>);
    /// impl Apply for Scores {
    ///     type Op = (String, u32);
    ///     fn apply(&mut self, (name, score): &(String, u32)) {
    ///         self.0.insert(name.clone(), *score);
    ///     }
    /// }
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("scores.json");
    /// let scores = FileAtom::builder(&path).journal(true).ops().open(Scores::default())?;
    /// scores.apply(("ada".into(), 3))?; // one small record, one flush
    /// drop(scores);
    /// let again = FileAtom::builder(&path).journal(true).ops().open(Scores::default())?;
    /// assert_eq!(again.deref().0["ada"], 3); // the op, replayed
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ops(mut self) -> Self {
        self.options = self.options.ops();
        self
    }
}

impl<T: Value> FileAtom<T> {
    /// Starts a builder for the atom at `path`: compact JSON, no validator, durable
    /// commits, pending files beside the data file, no lock timeout.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json")).open(7u8)?;
    /// assert_eq!(std::fs::read_to_string(dir.join("n.json"))?, "7");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> Self {
        FileAtom {
            store: FileStore::builder(path),
            options: Options::new(),
        }
    }

    /// Uses `codec` instead of JSON. Combined with [`pretty`](FileAtom::pretty) in either
    /// order: `pretty` picks the pretty or compact form of the codec's format, and
    /// `pretty(true)` with a format that has no pretty form makes
    /// [`open`](FileAtom::open) fail.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("a.json"))
    ///     .codec(enduro::Json::pretty())
    ///     .open(vec![1])?;
    /// assert_eq!(std::fs::read_to_string(dir.join("a.json"))?, "[\n  1\n]\n");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec<C: Codec>(mut self, codec: C) -> Self {
        self.options = self.options.codec(codec);
        self
    }

    /// Writes the pretty form of the codec's format (with `true`: indented JSON, say) or
    /// its compact form (with `false`), whatever codec of that format was chosen and in
    /// whichever order. Without it, the codec decides (compact JSON by default). It never
    /// replaces the codec: `pretty(true)` with a format that has no pretty form (CBOR,
    /// MessagePack, postcard) is an error at [`open`](FileAtom::open), before the file is
    /// touched; `pretty(false)` leaves such a codec as it is. See
    /// [`Options::pretty`](enduro_core::Options::pretty).
    ///
    /// ```
    /// use enduro::{FileAtom, Json};
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let read = |name| std::fs::read_to_string(dir.join(name));
    /// FileAtom::builder(dir.join("a.json")).pretty(true).codec(Json::compact()).open([1])?;
    /// FileAtom::builder(dir.join("b.json")).codec(Json::compact()).pretty(true).open([1])?;
    /// assert_eq!(read("a.json")?, "[\n  1\n]\n");
    /// assert_eq!(read("a.json")?, read("b.json")?);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pretty(mut self, pretty: bool) -> Self {
        self.options = self.options.pretty(pretty);
        self
    }

    /// Migrates data of an older schema when the atom opens (once, whatever the number of
    /// processes opening it at the same moment), and stores the schema with the data: the
    /// file holds `{"enduro_schema":N,"value":…}` in the codec's format. A failing step,
    /// or data of a newer schema, is an error and leaves the file byte for byte as it was.
    /// See [`Migrations`](enduro_core::Migrations).
    ///
    /// ```
    /// use enduro::{FileAtom, Migrations};
    /// use serde_json::{Value, json};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Config { name: String, retries: u32 }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("config.json");
    /// // Written by an older version of the program, which called `retries` `tries`.
    /// std::fs::write(&path, r#"{"name":"pump","tries":3}"#)?;
    ///
    /// let migrations = Migrations::new().step(|mut config: Value| {
    ///     let tries = config["tries"].take();
    ///     let config = config.as_object_mut().ok_or("the config is not an object")?;
    ///     config.remove("tries");
    ///     config.insert("retries".into(), tries);
    ///     Ok::<_, &str>(json!(config))
    /// });
    /// let init = Config { name: "new".into(), retries: 1 };
    /// let config = FileAtom::builder(&path).migrations(migrations).open(init)?;
    /// assert_eq!(config.deref().retries, 3);
    /// assert_eq!(
    ///     std::fs::read_to_string(&path)?,
    ///     r#"{"enduro_schema":1,"value":{"name":"pump","retries":3}}"#
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn migrations(mut self, migrations: enduro_core::Migrations) -> Self {
        self.options = self.options.migrations(migrations);
        self
    }

    /// With `true`, decodes every value again before it is written and refuses (with
    /// [`Error::Encode`](enduro_core::Error::Encode), the file untouched) one that would
    /// not read back; see [`Options::round_trip_check`](enduro_core::Options::round_trip_check).
    ///
    /// ```
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Secret { #[serde(skip_serializing)] key: String }
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let atom = enduro::FileAtom::builder(dir.path().join("a.json")).round_trip_check(true);
    /// assert!(atom.open(Secret { key: "k".into() }).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn round_trip_check(mut self, check: bool) -> Self {
        self.options = self.options.round_trip_check(check);
        self
    }

    /// Requires `init` (or the stored value) and every new value to pass `validator`; a
    /// value it refuses fails with [`Error::Invalid`](enduro_core::Error::Invalid) (with the
    /// reason, if the validator returns `Err(reason)`; see [`Validation`]).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .validator(|n: &i32| *n >= 0)
    ///     .open(1)?;
    /// assert!(matches!(atom.reset(-1), Err(enduro::Error::Invalid { .. })));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validator<V: Validation>(
        mut self,
        validator: impl Fn(&T) -> V + Send + Sync + 'static,
    ) -> Self {
        self.options = self.options.validator(validator);
        self
    }

    /// Chooses when changes count as done: [`CommitMode::Durable`] (the default) or the
    /// opt-in [`CommitMode::Background`], where swaps return at once and a background
    /// thread writes the latest value (see [`Atom::flush`]).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .commit_mode(enduro::CommitMode::Durable)
    ///     .open(0u64)?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit_mode(mut self, mode: CommitMode) -> Self {
        self.options = self.options.commit_mode(mode);
        self
    }

    /// Writes pending files in `dir` instead of the data file's directory; see
    /// [`FileStoreBuilder::pending_dir`].
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .pending_dir(dir.join("pending"))
    ///     .open(0u64)?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.store = self.store.pending_dir(dir);
        self
    }

    /// Gives up with [`Error::LockTimeout`](enduro_core::Error::LockTimeout) after waiting `timeout` for another process's
    /// lock; see [`FileStoreBuilder::lock_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .lock_timeout(Duration::from_secs(2))
    ///     .open(0u64)?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.lock_timeout(timeout);
        self
    }

    /// Commits by appending a record to a journal beside the data file and flushing it
    /// once (with `true`), instead of replacing the whole file: the fastest durable way
    /// to keep a value. The data file stays readable as the last snapshot; every handle
    /// on the path, of either mode and in any process, sees the same value. See the
    /// crate's docs on journal mode.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("hits.json");
    /// let hits = enduro::FileAtom::builder(&path).journal(true).open(0u64)?;
    /// hits.swap(|n| n + 1)?;
    /// drop(hits);
    /// let plain = enduro::file_atom(0u64, &path)?; // replays the journal
    /// assert_eq!(*plain.deref(), 1);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal(mut self, journal: bool) -> Self {
        self.store = self.store.journal(journal);
        self
    }

    /// Compacts the journal once its records take more than `bytes` (default 4 MiB), or
    /// eight times the value's size if that is larger; see
    /// [`FileStoreBuilder::journal_limit`].
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .journal(true)
    ///     .journal_limit(1 << 20)
    ///     .open(0u64)?;
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn journal_limit(mut self, bytes: u64) -> Self {
        self.store = self.store.journal_limit(bytes);
        self
    }

    /// Opens the atom. Fails before touching the file system if [`pretty`]`(true)` was
    /// asked of a codec other than JSON.
    ///
    /// [`pretty`]: FileAtom::pretty
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json")).open(1u8)?;
    /// assert_eq!(*atom.deref(), 1);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self, init: T) -> Result<Atom<T>> {
        let options = self.options.resolved(&self.store.resource())?;
        Atom::open(self.store.open()?, init, options)
    }

    /// Makes the atom follow other processes' commits by itself (with `true`): one
    /// file-system watcher per process (inotify on Linux) watches the data file's
    /// directory, and a commit by another process (or a hand edit, or a removal) reaches
    /// [`deref`](Atom::deref) and the watches soon after, without a call to
    /// [`refresh`](Atom::refresh). Several commits in quick succession may reach the
    /// watches as one merged transition (`old` the value before them, `new` the latest).
    /// Blocking atoms catch up on one follower thread per process; async atoms on their
    /// runtime. Dropping the last live atom stops both. The kernel reports only changes
    /// made on this machine: on a network file system, another machine's commits reach
    /// the atom at its next `refresh` or swap. Feature `live`.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let path = dir.join("n.json");
    /// let live = enduro::FileAtom::builder(&path).live(true).open(0u32)?;
    /// let other = enduro::file_atom(0u32, &path)?; // as another process would
    /// other.reset(7)?;
    /// # let start = std::time::Instant::now();
    /// while *live.deref() != 7 {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// #   assert!(start.elapsed().as_secs() < 60);
    /// }
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "live")]
    pub fn live(mut self, live: bool) -> Self {
        self.options = self.options.live(live);
        self
    }

    /// Opens the atom as an [`AsyncAtom`](enduro_core::AsyncAtom): every file-system call
    /// (opening, waiting for another process's lock, writing, fsync) runs on the blocking
    /// thread pool of the current tokio runtime, so a current-thread runtime keeps serving
    /// while another process holds the lock. A swap whose future is dropped leaves no half
    /// commit and no held lock: the call it started runs to its end on its pool thread.
    /// Call it inside a tokio runtime. [`CommitMode::Background`] is refused. Feature
    /// `async`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let dir = std::env::temp_dir().join(format!("enduro-doc-{}-{}", std::process::id(), line!()));
    /// let atom = enduro::FileAtom::builder(dir.join("n.json"))
    ///     .validator(|n: &u32| *n < 10)
    ///     .open_async(1)
    ///     .await?;
    /// assert_eq!(*atom.swap(|n| n + 1).await?, 2);
    /// assert!(atom.reset(10).await.is_err());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    #[cfg(feature = "async")]
    pub async fn open_async(self, init: T) -> Result<enduro_core::AsyncAtom<T>> {
        let resource = self.store.resource();
        let options = self.options.resolved(&resource)?;
        let builder = self.store;
        // Opening creates files and directories and may wait for another process's lock.
        let store = enduro_core::OffThread::open(resource, move || builder.open()).await?;
        enduro_core::AsyncAtom::open(store, init, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use enduro_core::Json;

    /// A codec that is not JSON (it writes JSON all the same, for the test).
    struct Other;

    impl Codec for Other {
        fn name(&self) -> &'static str {
            "Other"
        }
        fn encode<V: serde::Serialize + ?Sized>(
            &self,
            value: &V,
            out: &mut dyn std::io::Write,
        ) -> std::result::Result<(), enduro_core::CodecError> {
            Json::compact().encode(value, out)
        }
        fn decode<V: serde::de::DeserializeOwned>(
            &self,
            bytes: &[u8],
        ) -> std::result::Result<V, enduro_core::CodecError> {
            Json::compact().decode(bytes)
        }
    }

    type Builder = FileAtom<Vec<u32>>;
    type Step = fn(Builder) -> Builder;

    /// What the atom that `build` makes writes, or the error that refuses it.
    fn written(build: Step) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.json");
        match build(FileAtom::builder(&path)).open(vec![1, 2]) {
            Ok(_) => std::fs::read_to_string(&path).expect("read"),
            Err(e) => format!("error: {e}").replace(&*dir.path().to_string_lossy(), "DIR"),
        }
    }

    #[test]
    fn codec_and_pretty_commute() {
        let cases: [(Step, Step, &str); 4] = [
            (
                |b| b.codec(Json::compact()).pretty(true),
                |b| b.pretty(true).codec(Json::compact()),
                "[\n  1,\n  2\n]\n",
            ),
            (
                |b| b.codec(Json::pretty()).pretty(false),
                |b| b.pretty(false).codec(Json::pretty()),
                "[1,2]",
            ),
            (
                |b| b.codec(Other).pretty(false),
                |b| b.pretty(false).codec(Other),
                "[1,2]",
            ),
            (
                |b| b.codec(Other).pretty(true),
                |b| b.pretty(true).codec(Other),
                "error: ",
            ),
        ];
        for (i, (one, other, want)) in cases.into_iter().enumerate() {
            let (a, b) = (written(one), written(other));
            assert_eq!(a, b, "case {i}");
            assert!(a.starts_with(want), "case {i}: {a}");
        }
        let refused = written(|b| b.pretty(true).codec(Other));
        assert!(
            refused.contains("pretty(true)") && refused.contains("Other"),
            "{refused}"
        );
        // Refused before anything was created.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/a.json");
        assert!(
            FileAtom::builder(&path)
                .codec(Other)
                .pretty(true)
                .open(1)
                .is_err()
        );
        assert!(!dir.path().join("sub").exists());
    }

    #[test]
    fn every_other_setter_commutes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pending = dir.path().join("pending");
        let timeout = Duration::from_secs(3);
        let one = FileAtom::<u8>::builder(dir.path().join("a.json"))
            .pending_dir(&pending)
            .lock_timeout(timeout)
            .validator(|n| *n < 9)
            .commit_mode(CommitMode::Durable)
            .pretty(true);
        let other = FileAtom::<u8>::builder(dir.path().join("a.json"))
            .pretty(true)
            .commit_mode(CommitMode::Durable)
            .validator(|n| *n < 9)
            .lock_timeout(timeout)
            .pending_dir(&pending);
        assert_eq!(format!("{one:?}"), format!("{other:?}"));
    }
}
