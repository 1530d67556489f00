//! The write side of a connection: [`Outgoing`] frames encoded into one buffer and written
//! together, used by the broker's and the client's writer tasks.

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::FrameError;
use crate::outgoing::Outgoing;

/// Bytes encoded before they are written even if more frames are queued. (tokio-util's
/// `FramedWrite`, used before, wrote from 8 KiB: a write per 8 MESSAGEs of 1 KiB.)
const WRITE_AT: usize = 128 << 10;
/// A buffer grown above this by a large frame is released after its write.
const SHRINK_ABOVE: usize = 1 << 20;
/// The buffer's room at first and after a large frame.
const INITIAL: usize = 8 << 10;

/// A socket's write half with the buffer its frames are encoded into.
pub struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps the write half `io`.
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            buf: BytesMut::with_capacity(INITIAL),
        }
    }

    /// Encodes `o` after the frames already buffered; on error the buffer is unchanged.
    pub fn encode(&mut self, o: &Outgoing, max_frame_size: usize) -> Result<(), FrameError> {
        o.encode(max_frame_size, &mut self.buf)
    }

    /// Whether enough is buffered to write before encoding more.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= WRITE_AT
    }

    /// Writes and flushes what is buffered, then empties the buffer (releasing the room a large
    /// frame took).
    pub async fn write(&mut self) -> std::io::Result<()> {
        // read before the write: writing advances the buffer, which lowers its capacity
        let grown = self.buf.capacity() > SHRINK_ABOVE;
        self.io.write_all_buf(&mut self.buf).await?;
        self.io.flush().await?;
        if grown {
            self.buf = BytesMut::with_capacity(INITIAL);
        } else {
            self.buf.clear();
        }
        Ok(())
    }

    /// Shuts the write half down (what is buffered is not written).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::commands;
    use crate::frame::Frame;

    /// A frame larger than the release threshold goes out whole and its room is given back.
    #[tokio::test]
    async fn a_large_frame_is_written_and_its_room_released() {
        let (ours, mut theirs) = tokio::io::duplex(64 << 10);
        let mut w = FrameWriter::new(ours);
        let big = Outgoing::from(Frame::simple(commands::error(
            1,
            crate::pulsar::ServerError::UnknownError,
            "x".repeat(2 << 20),
        )));
        w.encode(&big, usize::MAX / 2).unwrap();
        assert!(w.is_full());
        let want = big.encoded_len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; want];
            theirs.read_exact(&mut got).await.unwrap();
        });
        w.write().await.unwrap();
        reader.await.unwrap();
        assert!(!w.is_full());
        assert_eq!(w.buf.capacity(), INITIAL);
    }
}
