//! The metrics against a real hub, their output read back by a strict parser of the
//! Prometheus text format.

mod alerts;
mod exposition;
mod http;
mod output;
mod recorder;
mod support;
