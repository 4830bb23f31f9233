//! A live atom's helpers last as long as live atoms do: the follower thread and the
//! file-system watcher's thread start with the first live atom of the process and end
//! with the last. Alone in its test binary, so that no other test's atoms are counted.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use enduro_core::conformance::eventually;
use enduro_file::FileAtom;

/// The process's threads whose names start with `prefix` (Linux keeps the first 15
/// bytes of a name).
fn threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

const FOLLOWER: &str = "enduro-follower";
const WATCHER: &str = "notify-rs inoti";

#[test]
fn the_follower_and_the_watcher_start_with_the_first_live_atom_and_end_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!((threads(FOLLOWER), threads(WATCHER)), (0, 0));
    // Not live: nothing started.
    let plain = FileAtom::builder(dir.path().join("plain.json"))
        .open(0u8)
        .unwrap();
    assert_eq!((threads(FOLLOWER), threads(WATCHER)), (0, 0));

    // A thousand live atoms in two directories: one follower, one watcher.
    let live: Vec<_> = (0..1000)
        .map(|i| {
            let path = dir.path().join(format!("d{}/{i}.json", i % 2));
            FileAtom::builder(path).live(true).open(i).unwrap()
        })
        .collect();
    assert_eq!((threads(FOLLOWER), threads(WATCHER)), (1, 1));
    let other = enduro_file::file_atom(0, dir.path().join("d1/999.json")).unwrap();
    other.reset(5).unwrap();
    eventually("the last live atom follows its file", || {
        *live[999].deref() == 5
    });
    assert_eq!(*live[998].deref(), 998, "the neighbour is left alone");

    let clone = live[0].clone();
    drop(live);
    // A clone keeps its atom live.
    assert_eq!((threads(FOLLOWER), threads(WATCHER)), (1, 1));
    drop(clone);
    eventually("the follower and the watcher end", || {
        (threads(FOLLOWER), threads(WATCHER)) == (0, 0)
    });
    drop(plain);

    // And start again for the next live atom.
    let again = FileAtom::builder(dir.path().join("d0/0.json"))
        .live(true)
        .open(0)
        .unwrap();
    assert_eq!((threads(FOLLOWER), threads(WATCHER)), (1, 1));
    other.reset(9).unwrap();
    let other0 = enduro_file::file_atom(0, dir.path().join("d0/0.json")).unwrap();
    other0.reset(7).unwrap();
    eventually("the new live atom follows its file", || *again.deref() == 7);
}
