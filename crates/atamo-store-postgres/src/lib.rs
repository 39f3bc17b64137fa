//! Atamo's shared durable store on PostgreSQL.
