//! [`AddRequest`]: one add, as the client hands it to a bookie — over gRPC (where it travels as
//! the wire's `AddRequest` with a request id) or to the bookie of the same process.

use bytes::Bytes;

/// One add: an entry of a ledger, with the writer's master key and last-add-confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddRequest {
    /// The ledger.
    pub ledger: u64,
    /// The entry id.
    pub entry: u64,
    /// The ledger's master key (set by its first add, checked on every later one).
    pub master_key: Bytes,
    /// The writer's last-add-confirmed (-1: none).
    pub lac: i64,
    /// The entry's bytes.
    pub payload: Bytes,
    /// Their CRC32C when the caller has it (a broker verified the client's checksum of the same
    /// bytes): the bookie of the same process then does not read them for its own. Not sent over
    /// gRPC (a remote bookie computes it).
    pub payload_crc: Option<u32>,
    /// A recovery add (ledger recovery, re-replication): accepted by a bookie that fenced the
    /// ledger when the master key matches.
    pub recovery: bool,
}
