//! The loader and the checker: defaults, each environment override, precedence, every
//! section, and files with many errors reported at their lines.

mod files;
mod layering;
mod registrations;
mod sections;
mod support;
