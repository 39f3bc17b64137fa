//! The built-in `command` agent.
