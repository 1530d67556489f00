//! Size limits both ends of the bookie gRPC connection agree on.

/// Largest gRPC message (entries up to 16 MiB plus headers).
pub const MAX_MESSAGE_BYTES: usize = 32 << 20;

/// HTTP/2 flow-control window of one stream (the connection gets four times as much): enough for
/// a few hundred 64 KiB adds in flight on one add stream.
pub const WINDOW_BYTES: u32 = 16 << 20;
