//! Options every atom takes, whatever its backend: the codec and a validator.

use std::fmt;
use std::sync::Arc;

use crate::background::CommitMode;
use crate::codec::{Codec, Json, Typed, TypedCodec};
use crate::value::Value;

/// A validator: `true` accepts a value, `false` rejects it with [`Error::Invalid`](crate::Error::Invalid).
pub type Validator<T> = Arc<dyn Fn(&T) -> bool + Send + Sync + 'static>;

/// The options an atom is opened with: its codec (JSON unless chosen otherwise) and an
/// optional validator that the initial value and every new value must pass.
///
/// Backend builders (`FileAtom::builder`, ...) wrap this; use it directly with
/// [`Atom::open`](crate::Atom::open) on a store of your own.
///
/// ```
/// use enduro_core::{Json, Options};
///
/// let options = Options::<u32>::new().codec(Json::pretty()).validator(|n| *n < 10);
/// assert_eq!(options.codec_name(), "JSON");
/// assert!(options.has_validator());
/// ```
pub struct Options<T> {
    pub(crate) codec: Arc<dyn TypedCodec<T>>,
    pub(crate) validator: Option<Validator<T>>,
    pub(crate) mode: CommitMode,
}

impl<T: Value> Options<T> {
    /// Compact JSON and no validator.
    pub fn new() -> Self {
        Options {
            codec: Arc::new(Typed(Json::default())),
            validator: None,
            mode: CommitMode::Durable,
        }
    }

    /// Uses `codec` to turn values into bytes and back.
    pub fn codec<C: Codec>(mut self, codec: C) -> Self {
        self.codec = Arc::new(Typed(codec));
        self
    }

    /// Requires every value, the initial one included, to pass `validator`.
    pub fn validator(mut self, validator: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.validator = Some(Arc::new(validator));
        self
    }

    /// When changes count as done: [`CommitMode::Durable`] (the default) or the opt-in
    /// [`CommitMode::Background`]. Only [`Atom`](crate::Atom) offers background mode.
    pub fn commit_mode(mut self, mode: CommitMode) -> Self {
        self.mode = mode;
        self
    }
}

impl<T> Options<T> {
    /// The chosen codec's name.
    pub fn codec_name(&self) -> &'static str {
        self.codec.name()
    }

    /// The commit mode.
    pub fn mode(&self) -> CommitMode {
        self.mode
    }

    /// Whether a validator is set.
    pub fn has_validator(&self) -> bool {
        self.validator.is_some()
    }
}

impl<T: Value> Default for Options<T> {
    fn default() -> Self {
        Options::new()
    }
}

impl<T> Clone for Options<T> {
    fn clone(&self) -> Self {
        Options {
            codec: Arc::clone(&self.codec),
            validator: self.validator.clone(),
            mode: self.mode,
        }
    }
}

impl<T> fmt::Debug for Options<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("codec", &self.codec.name())
            .field("validator", &self.validator.is_some())
            .field("mode", &self.mode)
            .finish()
    }
}

/// Gives a backend's builder the setters every atom takes — `codec`, `validator` and
/// `commit_mode` — as inherent methods. The builder needs a field `options: Options<T>`
/// and `T: Value` in scope.
///
/// ```
/// use enduro_core::{Options, Value};
///
/// struct MyBuilder<T> {
///     options: Options<T>,
/// }
///
/// impl<T: Value> MyBuilder<T> {
///     enduro_core::option_setters!();
/// }
///
/// let b = MyBuilder { options: Options::<u8>::new() }.validator(|n| *n < 9);
/// assert!(b.options.has_validator());
/// ```
#[macro_export]
macro_rules! option_setters {
    () => {
        /// Uses `codec` instead of JSON.
        pub fn codec<C: $crate::Codec>(mut self, codec: C) -> Self {
            self.options = self.options.codec(codec);
            self
        }

        /// Requires `init` (or the stored value) and every new value to pass `validator`;
        /// a value it refuses fails with [`Error::Invalid`]($crate::Error::Invalid).
        pub fn validator(mut self, validator: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
            self.options = self.options.validator(validator);
            self
        }

        /// Chooses when changes count as done: [`CommitMode::Durable`]($crate::CommitMode)
        /// (the default) or the opt-in [`CommitMode::Background`]($crate::CommitMode),
        /// where swaps return at once and a background thread writes the latest value
        /// (see [`Atom::flush`]($crate::Atom::flush)).
        pub fn commit_mode(mut self, mode: $crate::CommitMode) -> Self {
            self.options = self.options.commit_mode(mode);
            self
        }
    };
}
