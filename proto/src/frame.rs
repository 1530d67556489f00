//! The Pulsar binary frame codec (a tokio-util [`Decoder`]/[`Encoder`]).
//!
//! Layout (every size a big-endian `u32`):
//!
//! ```text
//! simple command:  [total_size][command_size][BaseCommand]
//! payload command: [total_size][command_size][BaseCommand]
//!                  ([0x0e02][bem_size][BrokerEntryMetadata])?      broker -> client, opt-in
//!                  ([0x0e01][crc32c])? [metadata_size][MessageMetadata][payload]
//! ```
//!
//! `total_size` counts every byte after itself. The CRC32C covers `metadata_size`, the metadata and
//! the payload, i.e. exactly [`Payload::raw`].
//!
//! Decoding is check-then-parse: nothing is consumed or allocated until the whole frame is in the
//! buffer, and `total_size` is checked against the limit before the buffer grows for it. A frame
//! whose boundaries and command are sound but whose payload is not (bad checksum, bad metadata)
//! is returned as `Ok(Some(Err(BadPayload)))`: the stream stays in sync and the caller answers the
//! producer. Everything else that is wrong is an `Err`, after which the connection must be closed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use strata_common::crc::crc32c;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::FrameError;
use crate::pulsar::{BaseCommand, BrokerEntryMetadata, MessageMetadata, base_command};
use crate::read_chunk::ReadChunk;

/// Magic that precedes the CRC32C of a payload command.
pub const MAGIC_CRC32C: u16 = 0x0e01;
/// Magic that precedes broker entry metadata.
pub const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;
/// Default maximum message size advertised in CONNECTED (as Pulsar: 5 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 * 1024 * 1024;
/// Room for command and metadata on top of the message size (as Pulsar: 10 KiB).
pub const FRAME_PADDING: usize = 10 * 1024;
/// Highest protocol version we speak.
pub const PROTOCOL_VERSION: i32 = 21;

/// One decoded frame: a command and, for payload commands, the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The command (boxed: `BaseCommand` is ~5 KB and frames move through several layers).
    pub command: Box<BaseCommand>,
    /// Present for payload commands (SEND, MESSAGE).
    pub payload: Option<Payload>,
}

impl Frame {
    /// A frame without payload.
    pub fn simple(command: BaseCommand) -> Self {
        Frame {
            command: Box::new(command),
            payload: None,
        }
    }

    /// A frame with a payload.
    pub fn with_payload(command: BaseCommand, payload: Payload) -> Self {
        Frame {
            command: Box::new(command),
            payload: Some(payload),
        }
    }

    /// The command type, or [`FrameError::UnknownCommand`] for a value this protocol does not know.
    pub fn command_type(&self) -> Result<base_command::Type, FrameError> {
        command_type(&self.command)
    }

    /// Number of bytes [`PulsarCodec`] writes for this frame (including the 4-byte total size).
    pub fn encoded_len(&self) -> usize {
        4 + body_len(&self.command, self.payload.as_ref())
    }

    /// Encodes the frame into a fresh buffer (no size limit beyond `u32`).
    pub fn to_bytes(&self) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        encode_frame(&self.command, self.payload.as_ref(), usize::MAX, &mut buf)?;
        Ok(buf.freeze())
    }
}

/// The command type of a `BaseCommand`.
pub fn command_type(command: &BaseCommand) -> Result<base_command::Type, FrameError> {
    base_command::Type::try_from(command.r#type)
        .map_err(|_| FrameError::UnknownCommand(command.r#type))
}

/// The message part of a payload command.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Broker entry metadata (magic 0x0e02), only on MESSAGE frames to clients that asked for it.
    pub broker_entry_metadata: Option<BrokerEntryMetadata>,
    /// The producer's metadata, parsed (boxed: it is ~450 bytes, and payloads move through
    /// channels and several layers by value).
    pub metadata: Box<MessageMetadata>,
    /// The message bytes after the metadata (compressed and/or a batch as the producer sent them).
    /// A slice of [`Payload::raw`], never a copy.
    pub data: Bytes,
    /// `[metadata_size][MessageMetadata][data]` exactly as received: the bytes the CRC32C covers,
    /// and what a broker stores as the entry without re-encoding.
    pub raw: Bytes,
    /// `crc32c(raw)` when a decoder verified it against the frame's checksum (see
    /// [`Payload::verified_checksum`]). Whoever replaces `raw` builds a new payload instead.
    verified: Option<u32>,
}

/// Payloads are equal when their contents are (whether a checksum was verified does not count).
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.broker_entry_metadata == other.broker_entry_metadata
            && self.metadata == other.metadata
            && self.data == other.data
            && self.raw == other.raw
    }
}

impl Payload {
    /// Builds a payload from metadata and data (encodes [`Payload::raw`] once).
    pub fn new(metadata: MessageMetadata, data: &[u8]) -> Self {
        Self::build(metadata, data.len(), |raw| raw.put_slice(data))
    }

    /// Builds a payload from metadata and data that `write_data` appends (`data_len` bytes, the
    /// capacity reserved for it), so data assembled from parts (a batch) is copied only once.
    pub fn build(
        metadata: MessageMetadata,
        data_len: usize,
        write_data: impl FnOnce(&mut BytesMut),
    ) -> Self {
        let md_len = metadata.encoded_len();
        let raw = encode_entry_sized(&metadata, md_len, data_len, write_data);
        let data = raw.slice(4 + md_len..);
        Payload {
            broker_entry_metadata: None,
            metadata: Box::new(metadata),
            data,
            raw,
            verified: None,
        }
    }

    /// Parses a stored entry (`[metadata_size][MessageMetadata][data]`, as in [`Payload::raw`]).
    pub fn from_raw(raw: Bytes) -> Result<Self, FrameError> {
        let md = metadata_range(&raw)?;
        // decoded straight into the heap: no stack copy of the ~450-byte struct
        let mut metadata = Box::<MessageMetadata>::default();
        metadata
            .merge(&raw[md.clone()])
            .map_err(FrameError::InvalidMetadata)?;
        let data = raw.slice(md.end..);
        Ok(Payload {
            broker_entry_metadata: None,
            metadata,
            data,
            raw,
            verified: None,
        })
    }

    /// Its bytes as they would be sent when their metadata does not decode (no fields parsed).
    pub fn opaque(raw: Bytes) -> Self {
        Payload {
            broker_entry_metadata: None,
            metadata: Default::default(),
            data: raw.clone(),
            raw,
            verified: None,
        }
    }

    /// The CRC32C of [`Payload::raw`] if the frame it came in carried one and it matched (a
    /// storage that checksums the entry can take it instead of reading the bytes again).
    pub fn verified_checksum(&self) -> Option<u32> {
        self.verified
    }

    /// The CRC32C of [`Payload::raw`] as carried after magic 0x0e01.
    pub fn checksum(&self) -> u32 {
        crc32c(&self.raw)
    }

    /// Number of messages in this entry (`num_messages_in_batch`, 1 when not a batch).
    pub fn num_messages(&self) -> i32 {
        self.metadata.num_messages_in_batch()
    }

    /// What a frame carrying this payload writes after its command.
    pub(crate) fn body(&self) -> Body<'_> {
        Body {
            broker_entry_metadata: self.broker_entry_metadata.as_ref(),
            raw: &self.raw,
        }
    }
}

/// Encodes an entry, `[metadata_size][MessageMetadata][data]` (what a SEND carries and a broker
/// stores), where `write_data` appends the data (`data_len` bytes, the capacity reserved for
/// them). A client that only sends it needs no [`Payload`] (its boxed metadata and data slice).
pub fn encode_entry(
    metadata: &MessageMetadata,
    data_len: usize,
    write_data: impl FnOnce(&mut BytesMut),
) -> Bytes {
    encode_entry_sized(metadata, metadata.encoded_len(), data_len, write_data)
}

/// [`encode_entry`] for metadata whose encoded length `md_len` the caller has.
fn encode_entry_sized(
    metadata: &MessageMetadata,
    md_len: usize,
    data_len: usize,
    write_data: impl FnOnce(&mut BytesMut),
) -> Bytes {
    let mut raw = BytesMut::with_capacity(4 + md_len + data_len);
    raw.put_u32(md_len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    metadata.encode_raw(&mut raw);
    write_data(&mut raw);
    raw.freeze()
}

/// Where the metadata of an entry (`[metadata_size][MessageMetadata][data]`) lies, checked
/// against the entry's length.
pub(crate) fn metadata_range(raw: &[u8]) -> Result<std::ops::Range<usize>, FrameError> {
    let Some(size) = raw.get(..4) else {
        return Err(FrameError::PayloadLayout(
            "payload shorter than the metadata size field",
        ));
    };
    let md_size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
    if md_size > raw.len() - 4 {
        return Err(FrameError::PayloadLayout(
            "metadata size beyond the end of the payload",
        ));
    }
    Ok(4..4 + md_size)
}

/// The part of a payload frame after its command: optional broker entry metadata, then the
/// checksummed entry bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Body<'a> {
    pub broker_entry_metadata: Option<&'a BrokerEntryMetadata>,
    /// `[metadata_size][MessageMetadata][data]`, as in [`Payload::raw`].
    pub raw: &'a [u8],
}

impl Body<'_> {
    fn encoded_len(&self) -> usize {
        let bem = self
            .broker_entry_metadata
            .map_or(0, |b| 2 + 4 + b.encoded_len());
        bem + 2 + 4 + self.raw.len()
    }
}

/// A frame whose boundaries and command decoded but whose payload did not: the connection is
/// still in sync. A broker answers `SEND_ERROR` (`ChecksumError`) for `command.send`.
#[derive(Debug, Clone)]
pub struct BadPayload {
    /// The decoded command (e.g. SEND with its producer and sequence ids).
    pub command: Box<BaseCommand>,
    /// What was wrong with the payload.
    pub error: std::sync::Arc<FrameError>,
}

impl std::fmt::Display for BadPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bad payload on command type {}: {}",
            self.command.r#type, self.error
        )
    }
}

/// What [`PulsarCodec`] yields: a frame, or a frame with an unusable payload.
pub type Decoded = Result<Frame, BadPayload>;

/// The codec. Keep one per connection; set the limit from the negotiated `max_message_size`.
#[derive(Debug, Clone)]
pub struct PulsarCodec {
    max_frame_size: usize,
    read: ReadChunk,
}

impl Default for PulsarCodec {
    fn default() -> Self {
        Self::with_max_message_size(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl PulsarCodec {
    /// A codec with the default limit (5 MiB + 10 KiB).
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that accepts frames of up to `max_message_size` + [`FRAME_PADDING`] bytes.
    pub fn with_max_message_size(max_message_size: usize) -> Self {
        PulsarCodec {
            max_frame_size: max_message_size.saturating_add(FRAME_PADDING),
            read: ReadChunk::default(),
        }
    }

    /// A codec with an exact limit on `total_size` (bytes after the total-size field).
    pub fn with_max_frame_size(max_frame_size: usize) -> Self {
        PulsarCodec {
            max_frame_size,
            read: ReadChunk::default(),
        }
    }

    /// The limit on `total_size`.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Changes the limit (e.g. after CONNECTED advertised the broker's `max_message_size`).
    pub fn set_max_message_size(&mut self, max_message_size: usize) {
        self.max_frame_size = max_message_size.saturating_add(FRAME_PADDING);
    }
}

impl Decoder for PulsarCodec {
    type Item = Decoded;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        if src.len() < 4 {
            src.reserve(self.read.room(4 - src.len(), src.len()));
            return Ok(None);
        }
        let total = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if total > self.max_frame_size {
            return Err(FrameError::TooLarge {
                size: total,
                max: self.max_frame_size,
            });
        }
        if total < 4 {
            return Err(FrameError::Malformed(
                "total size smaller than the command size field",
            ));
        }
        if src.len() < 4 + total {
            // Bounded by the check above.
            src.reserve(self.read.room(4 + total - src.len(), src.len()));
            return Ok(None);
        }
        self.read.decoded(4 + total);
        let mut frame = src.split_to(4 + total).freeze();
        // `advance`, not `slice`: each clone of a frame is an atomic update of its read buffer's
        // count, which the thread that drops the stored entry updates too
        frame.advance(4);
        decode_body(frame).map(Some)
    }
}

/// Decodes `[command_size][BaseCommand][payload...]` (a frame without its total-size field).
fn decode_body(mut body: Bytes) -> Result<Decoded, FrameError> {
    if body.len() < 4 {
        return Err(FrameError::Malformed(
            "frame shorter than the command size field",
        ));
    }
    let cmd_size = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if cmd_size > body.len() - 4 {
        return Err(FrameError::Malformed(
            "command size beyond the end of the frame",
        ));
    }
    // Decode straight into the heap: `BaseCommand` is ~5 KB, no stack copy.
    let mut command = Box::<BaseCommand>::default();
    command
        .merge(&body[4..4 + cmd_size])
        .map_err(FrameError::InvalidCommand)?;
    body.advance(4 + cmd_size);
    let rest = body;
    if rest.is_empty() {
        return Ok(Ok(Frame {
            command,
            payload: None,
        }));
    }
    match decode_payload(rest) {
        Ok(payload) => Ok(Ok(Frame {
            command,
            payload: Some(payload),
        })),
        Err(error) => Ok(Err(BadPayload {
            command,
            error: std::sync::Arc::new(error),
        })),
    }
}

fn peek_u16(b: &[u8]) -> Option<u16> {
    (b.len() >= 2).then(|| u16::from_be_bytes([b[0], b[1]]))
}

/// Decodes the part after the command: optional broker entry metadata, optional checksum, then
/// metadata and data.
fn decode_payload(mut rest: Bytes) -> Result<Payload, FrameError> {
    let mut broker_entry_metadata = None;
    if peek_u16(&rest) == Some(MAGIC_BROKER_ENTRY_METADATA) {
        if rest.len() < 6 {
            return Err(FrameError::PayloadLayout(
                "broker entry metadata size missing",
            ));
        }
        let size = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
        if size > rest.len() - 6 {
            return Err(FrameError::PayloadLayout(
                "broker entry metadata beyond the end of the frame",
            ));
        }
        broker_entry_metadata = Some(
            BrokerEntryMetadata::decode(&rest[6..6 + size]).map_err(FrameError::InvalidMetadata)?,
        );
        rest.advance(6 + size);
    }
    let mut verified = None;
    let raw = if peek_u16(&rest) == Some(MAGIC_CRC32C) {
        if rest.len() < 6 {
            return Err(FrameError::PayloadLayout(
                "checksum missing after its magic",
            ));
        }
        let expected = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        rest.advance(6);
        let raw = rest;
        let computed = crc32c(&raw);
        if computed != expected {
            return Err(FrameError::ChecksumMismatch { expected, computed });
        }
        verified = Some(computed);
        raw
    } else {
        // Clients older than protocol v6 send no checksum.
        rest
    };
    let mut payload = Payload::from_raw(raw)?;
    payload.broker_entry_metadata = broker_entry_metadata;
    payload.verified = verified;
    Ok(payload)
}

fn body_len(command: &BaseCommand, payload: Option<&Payload>) -> usize {
    body_len_with(command.encoded_len(), payload.map(Payload::body))
}

/// [`body_len`] for a command whose protobuf size is known.
fn body_len_with(command_len: usize, payload: Option<Body<'_>>) -> usize {
    4 + command_len + payload.map_or(0, |b| b.encoded_len())
}

/// Appends one frame to `dst`. Fails with [`FrameError::TooLarge`] when the frame's `total_size`
/// would exceed `max_frame_size` (or `u32::MAX`); `dst` is unchanged then.
pub fn encode_frame(
    command: &BaseCommand,
    payload: Option<&Payload>,
    max_frame_size: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    // a command's protobuf size walks every field of `BaseCommand`: computed once
    let command_len = command.encoded_len();
    encode_with(
        command_len,
        |dst| command.encode_raw(dst),
        payload.map(Payload::body),
        max_frame_size,
        dst,
    )
}

/// Number of bytes a frame takes whose command is `command_len` bytes of protobuf (including
/// the 4-byte total size).
pub(crate) fn frame_len_with(command_len: usize, payload: Option<Body<'_>>) -> usize {
    4 + body_len_with(command_len, payload)
}

/// [`encode_frame`] for a command of `command_len` bytes that `write_command` appends.
pub(crate) fn encode_with(
    command_len: usize,
    write_command: impl FnOnce(&mut BytesMut),
    payload: Option<Body<'_>>,
    max_frame_size: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let total = body_len_with(command_len, payload);
    let max = max_frame_size.min(u32::MAX as usize);
    if total > max {
        return Err(FrameError::TooLarge { size: total, max });
    }
    dst.reserve(4 + total);
    dst.put_u32(total as u32);
    dst.put_u32(command_len as u32);
    write_command(dst);
    if let Some(p) = payload {
        if let Some(bem) = p.broker_entry_metadata {
            dst.put_u16(MAGIC_BROKER_ENTRY_METADATA);
            dst.put_u32(bem.encoded_len() as u32);
            bem.encode_raw(dst);
        }
        dst.put_u16(MAGIC_CRC32C);
        dst.put_u32(crc32c(p.raw));
        dst.put_slice(p.raw);
    }
    Ok(())
}

/// The only `Encoder` impl, so `SinkExt::flush` on a `FramedWrite<_, PulsarCodec>` infers its item
/// type. Use [`encode_frame`] to encode a borrowed command.
impl Encoder<Frame> for PulsarCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(
            &item.command,
            item.payload.as_ref(),
            self.max_frame_size,
            dst,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::commands;
    use crate::pulsar::{KeyValue, MessageIdData};
    use proptest::prelude::*;

    fn decode_all(codec: &mut PulsarCodec, buf: &mut BytesMut) -> Vec<Decoded> {
        let mut out = Vec::new();
        while let Some(f) = codec.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn arb_metadata() -> impl Strategy<Value = MessageMetadata> {
        (
            "[a-z0-9-]{0,20}",
            any::<u64>(),
            any::<u64>(),
            proptest::option::of("[a-z]{0,8}"),
            proptest::option::of(1i32..1000),
            proptest::collection::vec(("[a-z]{1,5}", "[a-z]{0,5}"), 0..3),
            proptest::option::of(0i32..5),
        )
            .prop_map(|(name, seq, time, key, n, props, comp)| MessageMetadata {
                producer_name: name,
                sequence_id: seq,
                publish_time: time,
                partition_key: key,
                num_messages_in_batch: n,
                compression: comp,
                properties: props
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value })
                    .collect(),
                ..Default::default()
            })
    }

    fn arb_simple_command() -> impl Strategy<Value = BaseCommand> {
        prop_oneof![
            Just(commands::ping()),
            Just(commands::pong()),
            (any::<u64>(), any::<u32>()).prop_map(|(c, p)| commands::flow(c, p)),
            (any::<u64>(), "[ -~]{0,40}").prop_map(|(r, m)| commands::error(
                r,
                crate::pulsar::ServerError::TopicNotFound,
                m
            )),
            ("[ -~]{0,40}", 0i32..30).prop_map(|(v, p)| commands::connect(&v, p, None)),
            (any::<u64>(), "[a-z/:]{1,40}").prop_map(|(r, t)| commands::lookup(r, &t, false)),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(p, s, l, e)| {
                commands::send_receipt(
                    p,
                    s,
                    MessageIdData {
                        ledger_id: l,
                        entry_id: e,
                        ..Default::default()
                    },
                )
            }),
        ]
    }

    fn arb_payload_frame() -> impl Strategy<Value = Frame> {
        (
            any::<u64>(),
            any::<u64>(),
            arb_metadata(),
            proptest::collection::vec(any::<u8>(), 0..2048),
            proptest::option::of((any::<u64>(), any::<u64>())),
            any::<bool>(),
        )
            .prop_map(|(pid, seq, md, data, bem, is_send)| {
                let mut payload = Payload::new(md, &data);
                payload.broker_entry_metadata = bem.map(|(t, i)| BrokerEntryMetadata {
                    broker_timestamp: Some(t),
                    index: Some(i),
                });
                let command = if is_send {
                    commands::send(pid, seq, 1)
                } else {
                    commands::message(
                        pid,
                        MessageIdData {
                            ledger_id: seq,
                            entry_id: pid,
                            ..Default::default()
                        },
                        3,
                    )
                };
                Frame::with_payload(command, payload)
            })
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            arb_simple_command().prop_map(Frame::simple),
            arb_payload_frame()
        ]
    }

    proptest! {
        #[test]
        fn round_trip_every_frame_shape(frames in proptest::collection::vec(arb_frame(), 1..8)) {
            let mut codec = PulsarCodec::new();
            let mut buf = BytesMut::new();
            for f in &frames {
                codec.encode(f.clone(), &mut buf).unwrap();
            }
            let decoded = decode_all(&mut codec, &mut buf);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(decoded.len(), frames.len());
            for (d, f) in decoded.into_iter().zip(frames) {
                let d = d.unwrap();
                prop_assert_eq!(&d, &f);
                if let Some(p) = &d.payload {
                    // The payload's data is a zero-copy view of raw.
                    prop_assert_eq!(&p.raw[p.raw.len() - p.data.len()..], &p.data[..]);
                    // the encoder always sends a checksum: the decoder hands on what it verified
                    prop_assert_eq!(p.verified_checksum(), Some(crc32c(&p.raw)));
                }
            }
        }

        #[test]
        fn a_busy_connection_reads_larger_chunks_and_a_quiet_one_shrinks_back(frames in 200usize..500) {
            let mut codec = PulsarCodec::new();
            let mut wire = BytesMut::new();
            let f = Frame::with_payload(
                crate::commands::send(1, 1, 1),
                Payload::new(MessageMetadata::default(), &[7u8; 1000]),
            );
            for _ in 0..frames {
                codec.encode(f.clone(), &mut wire).unwrap();
            }
            // reads of up to the buffer's spare room, as FramedRead does
            let mut buf = BytesMut::new();
            let mut reads = 0;
            let (mut decoded, mut peak) = (0, 0);
            while !wire.is_empty() || !buf.is_empty() {
                let n = (buf.capacity() - buf.len()).clamp(1, wire.len().max(1)).min(wire.len());
                buf.extend_from_slice(&wire.split_to(n));
                reads += 1;
                while let Some(got) = codec.decode(&mut buf).unwrap() {
                    prop_assert!(got.is_ok());
                    decoded += 1;
                }
                peak = peak.max(codec.read.size());
                if wire.is_empty() {
                    break;
                }
            }
            prop_assert_eq!(decoded, frames);
            // ~1 KiB frames: 8 KiB reads would take about frames / 7
            prop_assert!(reads * 10 <= frames, "{reads} reads for {frames} frames");
            prop_assert_eq!(peak, ReadChunk::MAX);
            // quiet now: a few tiny reads bring the chunk back down
            for _ in 0..8 {
                prop_assert!(codec.decode(&mut buf).unwrap().is_none());
            }
            prop_assert_eq!(codec.read.size(), ReadChunk::MIN);
        }

        #[test]
        fn byte_by_byte_feed_decodes_the_same(frames in proptest::collection::vec(arb_frame(), 1..4)) {
            let mut codec = PulsarCodec::new();
            let mut wire = BytesMut::new();
            for f in &frames {
                codec.encode(f.clone(), &mut wire).unwrap();
            }
            let mut buf = BytesMut::new();
            let mut decoded = Vec::new();
            for b in wire.iter() {
                buf.put_u8(*b);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    decoded.push(f.unwrap());
                }
            }
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096),
                                       max in 0usize..8192) {
            let mut codec = PulsarCodec::with_max_frame_size(max);
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }

        #[test]
        fn arbitrary_bytes_after_valid_header_never_panic(cmd in proptest::collection::vec(any::<u8>(), 0..512),
                                                          rest in proptest::collection::vec(any::<u8>(), 0..512)) {
            // A well-formed envelope around random command and payload bytes reaches the parsers.
            let mut buf = BytesMut::new();
            buf.put_u32((4 + cmd.len() + rest.len()) as u32);
            buf.put_u32(cmd.len() as u32);
            buf.put_slice(&cmd);
            buf.put_slice(&rest);
            let _ = PulsarCodec::new().decode(&mut buf);
            let _ = Payload::from_raw(Bytes::from(rest));
        }
    }

    #[test]
    fn oversized_frame_rejected_before_allocating() {
        let mut codec = PulsarCodec::with_max_message_size(1024);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_u32(1024 + FRAME_PADDING as u32 + 1);
        let cap = buf.capacity();
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert_eq!(buf.capacity(), cap);
        // Exactly at the limit only waits for more bytes.
        let mut buf = BytesMut::new();
        buf.put_u32(1024 + FRAME_PADDING as u32);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let mut codec = PulsarCodec::with_max_message_size(10);
        let md = MessageMetadata::default();
        let frame = Frame::with_payload(commands::send(1, 1, 1), Payload::new(md, &[0u8; 20_000]));
        let mut buf = BytesMut::new();
        assert!(matches!(
            codec.encode(frame, &mut buf),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_checksum_is_reported_per_frame_and_stream_stays_in_sync() {
        let mut codec = PulsarCodec::new();
        let frame = Frame::with_payload(
            commands::send(7, 42, 1),
            Payload::new(MessageMetadata::default(), b"hello"),
        );
        let mut wire = BytesMut::new();
        codec.encode(frame, &mut wire).unwrap();
        let last = wire.len() - 1;
        wire[last] ^= 0xff; // corrupt one payload byte
        codec
            .encode(Frame::simple(commands::ping()), &mut wire)
            .unwrap();
        let out = decode_all(&mut codec, &mut wire);
        assert_eq!(out.len(), 2);
        let bad = out[0].as_ref().unwrap_err();
        assert!(matches!(*bad.error, FrameError::ChecksumMismatch { .. }));
        let send = bad.command.send.as_ref().unwrap();
        assert_eq!((send.producer_id, send.sequence_id), (7, 42));
        assert_eq!(
            out[1].as_ref().unwrap().command_type().unwrap(),
            base_command::Type::Ping
        );
    }

    #[test]
    fn payload_without_checksum_is_accepted() {
        // Protocol < v6 clients omit magic + CRC.
        let payload = Payload::new(MessageMetadata::default(), b"abc");
        let cmd = commands::send(1, 2, 1);
        let mut wire = BytesMut::new();
        wire.put_u32((4 + cmd.encoded_len() + payload.raw.len()) as u32);
        wire.put_u32(cmd.encoded_len() as u32);
        cmd.encode_raw(&mut wire);
        wire.put_slice(&payload.raw);
        let out = decode_all(&mut PulsarCodec::new(), &mut wire);
        let got = out[0].as_ref().unwrap().payload.as_ref().unwrap();
        assert_eq!(got.data, &b"abc"[..]);
        assert_eq!(got.verified_checksum(), None);
    }

    #[test]
    fn unknown_command_type_is_typed() {
        let cmd = BaseCommand {
            r#type: 999,
            ..Default::default()
        };
        let wire = Frame::simple(cmd).to_bytes().unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let f = PulsarCodec::new()
            .decode(&mut buf)
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(
            f.command_type(),
            Err(FrameError::UnknownCommand(999))
        ));
    }

    #[test]
    fn truncated_inner_sizes_are_errors_not_panics() {
        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.put_u32(100); // command size beyond the frame
        buf.put_u32(0);
        assert!(matches!(
            PulsarCodec::new().decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
        let mut buf = BytesMut::new();
        buf.put_u32(2);
        buf.put_u16(0);
        assert!(PulsarCodec::new().decode(&mut buf).is_err());
    }

    #[test]
    fn golden_ping_frame_and_crc32c() {
        // Hand-encoded: type=PING (field 1 = 18), empty field 18.
        let wire = Frame::simple(commands::ping()).to_bytes().unwrap();
        assert_eq!(
            &wire[..],
            &[0, 0, 0, 9, 0, 0, 0, 5, 0x08, 0x12, 0x92, 0x01, 0x00][..]
        );
        // CRC32C (Castagnoli) check value, as used by every Pulsar client.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn base_command_size_is_reported() {
        // Keep an eye on the size of the envelope struct moved around per frame.
        let size = std::mem::size_of::<BaseCommand>();
        eprintln!("size_of::<BaseCommand>() = {size}");
        assert!(size < 64 * 1024, "{size}");
    }
}
