//! SQLite atoms for enduro (in progress).
