//! Loom models of replicore's protocols. The models live in `tests/` and run only under
//! `--cfg loom`; use `cargo loom` from the workspace root.
