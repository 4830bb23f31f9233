//! What an atom can hold.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Any type an atom can hold: serde both ways, shareable across threads.
///
/// Implemented for every type that qualifies; you never implement it yourself.
///
/// ```
/// fn holdable<T: enduro::Value>() {}
/// holdable::<std::collections::BTreeMap<String, Vec<u8>>>();
/// ```
pub trait Value: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}
