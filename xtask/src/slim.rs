//! The slim-build checks: `enduro` with only the `file` feature must not pull in any
//! async runtime, database driver or network crate, and the files-only `enduro` command
//! (`enduro-cli --no-default-features`) no async runtime nor database driver. `cargo
//! xtask pi` runs the first for the Raspberry Pi's targets too, whose platform-specific
//! dependencies differ.

use crate::{Result, cargo_command, root};

/// Crates that must not appear in the file-only build's normal dependency tree.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio-postgres",
    "postgres",
    "postgres-protocol",
    "postgres-types",
    "deadpool",
    "deadpool-postgres",
    "rustls",
    "tokio-rustls",
    "tokio-postgres-rustls",
    "rustls-native-certs",
    "ring",
    "futures",
    "futures-util",
    "futures-core",
    "async-trait",
    "mio",
    "socket2",
    "hyper",
    "axum",
    "reqwest",
    // The formats beside JSON are opt-in features.
    "toml",
    "ron",
    "ciborium",
    "rmp-serde",
    "rmp",
    "postcard",
    // Redis and SQLite atoms are opt-in features, with their own trees.
    "enduro-redis",
    "redis",
    "enduro-sqlite",
    "rusqlite",
    "libsqlite3-sys",
];

/// Crates the files-only `enduro` command must not pull in (it has file watching, so
/// `mio`, and every self-describing format).
const CLI_FORBIDDEN: &[&str] = &[
    "tokio",
    "tokio-postgres",
    "postgres-protocol",
    "deadpool-postgres",
    "enduro-pg",
    "rustls",
    "ring",
    "redis",
    "enduro-redis",
    "rusqlite",
    "libsqlite3-sys",
    "enduro-sqlite",
    "postcard",
    "hyper",
    "axum",
    "reqwest",
];

/// A build whose normal dependency tree must stay free of some crates.
struct Slim {
    /// `cargo tree` arguments naming the package and its features.
    args: &'static [&'static str],
    forbidden: &'static [&'static str],
    what: &'static str,
    advice: &'static str,
}

const FACADE: Slim = Slim {
    args: &[
        "-p",
        "enduro",
        "--no-default-features",
        "--features",
        "file",
    ],
    forbidden: FORBIDDEN,
    what: "the file-only build",
    advice: "keep async, database and network crates behind the `async` and `pg` features",
};

const CLI: Slim = Slim {
    args: &["-p", "enduro-cli", "--no-default-features"],
    forbidden: CLI_FORBIDDEN,
    what: "the files-only `enduro` command",
    advice: "keep database crates behind enduro-cli's `pg`, `redis` and `sqlite` features",
};

/// The checks for the host.
pub(crate) fn check() -> Result {
    check_build(&FACADE, None)?;
    check_build(&CLI, None).map(|_| ())
}

/// The file-only build's check for `target` (a target triple; `None`: the host), whose
/// platform-specific dependencies differ; returns how many crates the build has.
pub(crate) fn check_target(target: Option<&str>) -> Result<usize> {
    check_build(&FACADE, target)
}

fn check_build(slim: &Slim, target: Option<&str>) -> Result<usize> {
    let mut cmd = cargo_command();
    cmd.arg("tree")
        .args(slim.args)
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"]);
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    let on = target.unwrap_or("the host");
    let output = cmd
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo tree for {on} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates = crate_names(&tree);
    let found = forbidden(&crates, slim.forbidden);
    if !found.is_empty() {
        return Err(format!(
            "{} for {on} pulls in {}: {}",
            slim.what,
            found.join(", "),
            slim.advice
        ));
    }
    eprintln!(
        "xtask: slim build ok for {on}: {} has {} crates: {}",
        slim.what,
        crates.len(),
        crates.join(" ")
    );
    Ok(crates.len())
}

/// The distinct crate names in `cargo tree --prefix none --format {p}` output.
fn crate_names(tree: &str) -> Vec<&str> {
    let mut crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    crates.sort_unstable();
    crates.dedup();
    crates
}

fn forbidden<'a>(crates: &[&'a str], forbidden: &[&str]) -> Vec<&'a str> {
    crates
        .iter()
        .copied()
        .filter(|name| forbidden.contains(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_forbidden_crates_in_a_tree() {
        let tree = "enduro v0.1.0 (/w/enduro)\nenduro-pg v0.1.0\ntokio v1.40.0\nserde v1.0.0\ntokio v1.40.0 (*)\n";
        let crates = crate_names(tree);
        assert_eq!(crates, ["enduro", "enduro-pg", "serde", "tokio"]);
        assert_eq!(forbidden(&crates, FORBIDDEN), ["tokio"]);
        assert!(forbidden(&crate_names("enduro v0.1.0\nserde v1.0.0\n"), FORBIDDEN).is_empty());
        assert_eq!(
            forbidden(&crate_names("mio v1.0.0\nrusqlite v0.1.0\n"), CLI_FORBIDDEN),
            ["rusqlite"]
        );
    }
}
