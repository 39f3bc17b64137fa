//! A real PostgreSQL server for the SQL agent's tests: the one `scripts/test` started
//! (`ATAMO_TEST_POSTGRES_URL`), or one of this test process's own (see `atamo_test_pg`).
//! Each test works in its own schema, so tests sharing one server do not meet.

pub use atamo_test_pg::{free_port, Pg};
