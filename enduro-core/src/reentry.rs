//! Re-entrant calls: an atom's operation called from inside that same atom's user code
//! (its update function, validator or `Serialize`), which would wait for itself forever.
//!
//! Each thread keeps the atoms whose user code it is running. Before an operation waits
//! for anything, it asks [`refuse`]; user code runs inside [`running_user_code`]. Watches
//! are not user code in this sense: they run after the commit, with nothing held, and may
//! change the atom again.

use std::cell::RefCell;

use crate::error::{Error, Result};

thread_local! {
    /// The atoms (by identity) whose user code this thread is running, innermost last.
    static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Runs `user_code` as the user code of the atom `atom` (an address that identifies it).
pub(crate) fn running_user_code<R>(atom: usize, user_code: impl FnOnce() -> R) -> R {
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            INSIDE.with(|inside| inside.borrow_mut().pop());
        }
    }
    INSIDE.with(|inside| inside.borrow_mut().push(atom));
    let _leave = Leave;
    user_code()
}

/// Fails with [`Error::Reentrant`] if this thread is running `atom`'s user code.
pub(crate) fn refuse(atom: usize, resource: &str, call: &'static str) -> Result<()> {
    if INSIDE.with(|inside| inside.borrow().contains(&atom)) {
        Err(Error::Reentrant {
            resource: resource.to_owned(),
            call,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_atom_whose_code_runs_is_refused() {
        assert!(refuse(1, "a", "swap").is_ok());
        running_user_code(1, || {
            assert!(matches!(
                refuse(1, "a", "swap"),
                Err(Error::Reentrant { call: "swap", .. })
            ));
            assert!(refuse(2, "b", "swap").is_ok());
            running_user_code(2, || assert!(refuse(1, "a", "swap").is_err()));
        });
        assert!(refuse(1, "a", "swap").is_ok());
    }

    #[test]
    fn a_panic_in_user_code_leaves_the_thread_clean() {
        let caught = std::panic::catch_unwind(|| running_user_code(7, || panic!("boom")));
        assert!(caught.is_err());
        assert!(refuse(7, "a", "swap").is_ok());
    }
}
