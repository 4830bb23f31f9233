//! How the tool fails: a message for people and an exit code for scripts.

use std::fmt;

/// Exit codes, in the style of well-known tools: 0 ok, 1 failed, 2 usage or invalid input
/// (clap's own errors are 2 too), 3 no atom there, 4 someone committed during an edit.
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const CONFLICT: u8 = 4;

/// A failure of a command: what went wrong (and what to do), and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    pub fn new(code: u8, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Fail {
        Fail::new(USAGE, message)
    }

    pub fn failed(message: impl Into<String>) -> Fail {
        Fail::new(FAILED, message)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Errors of the library: a value the store cannot hold or a validator's refusal is the
/// input's fault (2); everything else failed (1). Their messages name the resource
/// already, and never a password.
impl From<enduro::Error> for Fail {
    fn from(e: enduro::Error) -> Fail {
        let code = match &e {
            enduro::Error::Encode { .. } | enduro::Error::Invalid { .. } => USAGE,
            _ => FAILED,
        };
        let mut message = e.to_string();
        if e.may_have_been_stored() {
            message.push_str(
                "\n(the change may have been stored: run `enduro get` to see what the store holds)",
            );
        }
        Fail::new(code, message)
    }
}

pub type Outcome<T = ()> = Result<T, Fail>;
