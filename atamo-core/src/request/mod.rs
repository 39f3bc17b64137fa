//! Requests and their answers.
//!
//! A client sends a request (an event whose actions answer back) with
//! [`HubHandle::request`](crate::HubHandle::request) and gets a [`RequestId`](crate::RequestId)
//! at once. Agents answer once, several times, or continuously (a feed) through
//! [`CallContext::answer`](crate::CallContext::answer) and the payload of their final
//! [`Reply`](crate::Reply). The client collects answers in one of three ways:
//!
//! - [`wait`](crate::HubHandle::wait): until the request is complete, with a timeout;
//! - [`poll`](crate::HubHandle::poll): the state and the answers so far, now;
//! - [`subscribe`](crate::HubHandle::subscribe): a stream that replays what has arrived and
//!   continues live.
//!
//! A request is complete when every agent it was routed to has ended its part (or failed), when
//! its deadline passes, or when it is cancelled; [`RequestState`] says which. Its answers are
//! then kept for the keep-alive time, for clients that disconnected and come back; after that,
//! `poll` says [`RequestStatus::Expired`].
//!
//! Each request keeps at most a bounded number of updates not yet read by its subscribers. A
//! feed that produces faster than its slowest subscriber reads is slowed down
//! (`answer().await` waits): memory stays bounded and nothing is dropped.

mod entry;
mod group;
mod store;

pub use crate::message::request::{
    Answer, AnswerError, PartState, PartStatus, RequestOptions, RequestReceipt, RequestSnapshot,
    RequestState, RequestStatus, RequestUpdate, WaitError,
};
pub use entry::AnswerStream;
pub(crate) use entry::{Keeper, RequestEntry};
pub(crate) use group::{CallGroup, RequestSink};
pub(crate) use store::{Found, RequestStore, StoreConfig, Timers};
