//! How much room [`crate::frame::PulsarCodec`] gives a connection's read buffer.

/// The room a connection's read buffer gets when a frame is cut at its end: it adapts to the
/// traffic (as Netty's adaptive receive buffers do), so a busy connection reads many frames
/// per read call (and copies a cut frame's start once per chunk), while a quiet one keeps a
/// small buffer.
#[derive(Debug, Clone)]
pub(crate) struct ReadChunk {
    size: usize,
    /// Bytes decoded since the buffer last got room.
    consumed: usize,
}

impl ReadChunk {
    pub(crate) const MIN: usize = 8 << 10;
    pub(crate) const MAX: usize = 128 << 10;

    /// The current chunk.
    #[cfg(test)]
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// `n` bytes of frames were decoded.
    pub(crate) fn decoded(&mut self, n: usize) {
        self.consumed += n;
    }

    /// The room to reserve for a frame that needs `needed` more bytes after the `buffered`
    /// ones: the buffer is brought to one chunk (or the frame's size), the chunk doubling when
    /// the last one was mostly decoded frames, halving when it was mostly empty. (A buffer no
    /// frame holds on to any more is reused: only the cut frame's start moves to its front.)
    pub(crate) fn room(&mut self, needed: usize, buffered: usize) -> usize {
        if self.consumed >= self.size / 2 {
            self.size = (self.size * 2).min(Self::MAX);
        } else if self.consumed < self.size / 8 {
            self.size = (self.size / 2).max(Self::MIN);
        }
        self.consumed = 0;
        needed.max(self.size.saturating_sub(buffered))
    }
}

impl Default for ReadChunk {
    fn default() -> Self {
        ReadChunk {
            size: Self::MIN,
            consumed: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_reads_are_frames_and_shrinks_when_quiet() {
        let mut r = ReadChunk::default();
        // a read that was all frames: the next chunk doubles, up to the maximum
        for want in [16 << 10, 32 << 10, 64 << 10, 128 << 10, 128 << 10] {
            r.decoded(r.size());
            assert_eq!(r.room(100, 0), want);
        }
        // the room brings the buffer to one chunk in all, or fits the frame
        r.decoded(r.size() / 4);
        assert_eq!(r.room(100, 1000), (128 << 10) - 1000);
        r.decoded(r.size() / 4);
        assert_eq!(r.room(1 << 20, 1000), 1 << 20);
        // quiet reads: halves down to the minimum
        for want in [64 << 10, 32 << 10, 16 << 10, 8 << 10, 8 << 10] {
            assert_eq!(r.room(4, 0), want);
        }
    }
}
