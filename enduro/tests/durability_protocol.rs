//! Runs the address-book example under strace and checks the durability protocol of
//! every commit: fsync of the pending file, then the rename over the data file, then fsync
//! of the directory — in that order, for each commit.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

/// The example binary `cargo test` built beside this test: target/<profile>/examples/.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

#[test]
fn every_commit_fsyncs_renames_then_fsyncs_the_directory() {
    let strace_ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !strace_ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "strace is needed in CI"
        );
        eprintln!("skipping outside CI: no strace");
        return;
    }
    let binary = example("addresses");
    assert!(
        binary.exists(),
        "{} is missing: run through `cargo test`, which builds the examples",
        binary.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("book.json");
    let out = Command::new("strace")
        .args([
            "-f",
            "-y",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg(&binary)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = String::from_utf8_lossy(&out.stderr);
    let dir_name = dir.path().to_string_lossy().into_owned();
    let calls: Vec<&str> = trace.lines().filter(|l| l.contains(&*dir_name)).collect();

    // Each commit is exactly: fsync(<pending>), rename(<pending>, data), fsync(<dir>).
    let mut commits = 0;
    let mut rest = calls.as_slice();
    while let [sync, rename, dir_sync, tail @ ..] = rest {
        let pending = sync
            .split_once('<')
            .and_then(|(_, p)| p.split_once('>'))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("not an fsync of a file: {sync}"));
        assert!(
            sync.contains("sync(") && pending.ends_with(".enduro-pending"),
            "{sync}"
        );
        assert!(
            rename.starts_with("rename") || rename.contains("] rename"),
            "{rename}"
        );
        assert!(
            rename.contains(&format!("\"{pending}\"")),
            "renames {pending}: {rename}"
        );
        assert!(
            rename.contains(&format!("\"{}\"", data.display())),
            "{rename}"
        );
        assert!(
            dir_sync.contains("sync(") && dir_sync.contains(&format!("<{dir_name}>)")),
            "then fsyncs the directory: {dir_sync}"
        );
        commits += 1;
        rest = tail;
    }
    assert!(rest.is_empty(), "calls outside the protocol: {rest:?}");
    // The example commits the empty book, then three swaps (one swap is refused).
    assert_eq!(commits, 4, "{trace}");
}
