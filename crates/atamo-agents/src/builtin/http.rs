//! The built-in `http` agent.
