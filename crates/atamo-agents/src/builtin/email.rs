//! The built-in `email` agent.
