//! Atamo's embedded durable store on SQLite.
