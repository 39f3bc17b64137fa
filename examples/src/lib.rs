//! Runnable examples for the Atamo guides; see `examples/`.
