//! Memory atoms check, without being asked, that every value reads back: a test on memory
//! atoms fails at commit exactly where a file or a database would store something the next
//! open cannot read.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use enduro_core::{Atom, Error, Options};
use enduro_mem::{MemStore, mem_atom};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Session {
    user: String,
    /// Never written, yet required when read.
    #[serde(skip_serializing)]
    token: String,
}

#[test]
fn memory_atoms_refuse_values_that_would_not_read_back() {
    let init = || Session {
        user: "ada".into(),
        token: "t".into(),
    };
    let err = Atom::open(MemStore::new(), init(), Options::new()).unwrap_err();
    assert!(matches!(err, Error::Encode { .. }), "{err}");
    assert!(err.to_string().contains("would not read back"), "{err}");
    assert!(err.to_string().contains("missing field `token`"), "{err}");
    // Turning the check off on a memory store is not possible: the store asks for it.
    let err = Atom::open(
        MemStore::new(),
        init(),
        Options::new().round_trip_check(false),
    );
    assert!(err.is_err());

    let atom = mem_atom(vec![1u32]);
    assert_eq!(
        *atom.swap(|v| [v.as_slice(), &[2]].concat()).unwrap(),
        [1, 2]
    );
}
