//! The built-in `sql` agent.
