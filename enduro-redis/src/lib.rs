//! Redis atoms for enduro (in progress).
