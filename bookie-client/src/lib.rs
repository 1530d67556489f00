//! `strata-bookie-client`: the client side of the bookie gRPC API, without the bookie server.
//!
//! - [`BookieClient`]: a typed client of one bookie. Over gRPC, adds are pipelined on one
//!   bidirectional stream per client (opened lazily, reopened after a failure); reads, LAC
//!   long-polls ([`LacResponse`]), fence and delete are unary calls. Clones share the connection.
//! - [`AddRequest`]: one add (ledger, entry, master key, LAC, payload, recovery flag), as both
//!   backends and the bookie's storage take it.
//! - [`LocalBookie`]: the same calls on the bookie of the same process, without the network
//!   ([`BookieClient::local`]; `strata standalone`).
//! - [`ClientError`]: the bookie's error codes as an enum, with
//!   [`is_retryable`](ClientError::is_retryable).
//! - [`limits`]: the message and flow-control sizes client and server both use.
//!
//! Depends on `strata-proto` and tonic's client, not on the bookie server, so the ledger client
//! (and anything else that only talks to bookies) does not build the server. `strata-bookie`
//! re-exports this crate as `strata_bookie::client`.

mod add;
mod add_done;
mod client;
mod error;
mod grpc;
pub mod limits;
mod local;

pub use add::AddRequest;
pub use add_done::{AddDone, AddSink, AddTag};
pub use client::BookieClient;
pub use error::ClientError;
pub use local::{LacResponse, LocalBookie};
