//! The OpenAPI schemas of the bounded values: their ranges, stated where a client generator
//! and a fuzzer read them.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

/// A whole number from `min` to `max` (both included), in `unit`.
pub(crate) fn integer(min: u64, max: u64, unit: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(format!("{unit}, from {min} to {max}")))
        .into()
}

/// A number from `min` to `max` (both included).
pub(crate) fn number(min: f64, max: f64, what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(format!("{what}, from {min} to {max}")))
        .into()
}
