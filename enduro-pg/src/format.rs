//! The codec's style as chosen by `codec` and `pretty`, kept apart until `open` so that
//! the order of the two calls does not matter.

use std::any::Any;

use enduro_core::{Codec, Json, Options, Value};

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Format {
    /// The name of the chosen codec when it is not JSON.
    other_codec: Option<&'static str>,
    /// What `pretty` asked for, if it was called.
    pub(crate) pretty: Option<bool>,
}

impl Format {
    pub(crate) fn chose<C: Codec>(&mut self, codec: &C) {
        let json = (codec as &dyn Any).is::<Json>();
        self.other_codec = if json { None } else { Some(codec.name()) };
    }

    /// The options with the JSON style applied, or why the choices contradict each other.
    pub(crate) fn apply<T: Value>(self, options: Options<T>) -> Result<Options<T>, String> {
        match (self.pretty, self.other_codec) {
            (None, _) | (Some(false), Some(_)) => Ok(options),
            (Some(true), None) => Ok(options.codec(Json::pretty())),
            (Some(false), None) => Ok(options.codec(Json::compact())),
            (Some(true), Some(codec)) => Err(format!(
                "pretty(true) asks for indented JSON, but the codec chosen is {codec}; \
                 nothing was opened: drop pretty(true), or choose the JSON codec"
            )),
        }
    }
}
