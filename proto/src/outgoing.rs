//! Frames to write, with the ones sent per message (a client's SEND, a broker's SEND_RECEIPT and
//! MESSAGE) kept as their command alone. Those are encoded as a `BaseCommand` holding only the type and that
//! command, without building one: a `BaseCommand` is a boxed struct of ~70 fields that each frame
//! would zero, scan twice (size, then encoding) and free. The bytes are exactly those of
//! [`encode_frame`] for the same command (tested below).

use bytes::{Bytes, BytesMut};
use prost::Message;
use prost::encoding::{int32, message};

use crate::commands;
use crate::error::FrameError;
use crate::frame::{Body, Frame, Payload, encode_frame, encode_with, frame_len_with};
use crate::pulsar::base_command::Type;
use crate::pulsar::{BaseCommand, CommandMessage, CommandSend, CommandSendReceipt};

/// `BaseCommand.type`'s field number.
const TYPE_TAG: u32 = 1;
/// `BaseCommand.send`'s field number.
const SEND_TAG: u32 = 6;
/// `BaseCommand.send_receipt`'s field number.
const SEND_RECEIPT_TAG: u32 = 7;
/// `BaseCommand.message`'s field number.
const MESSAGE_TAG: u32 = 9;

/// A frame to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Any frame.
    Frame(Frame),
    /// SEND with its message as an entry (`[metadata_size][MessageMetadata][data]`, see
    /// [`crate::frame::encode_entry`]).
    Send(CommandSend, Bytes),
    /// SEND_RECEIPT.
    Receipt(CommandSendReceipt),
    /// MESSAGE with its entry (`[metadata_size][MessageMetadata][data]`, as stored).
    Message(CommandMessage, Bytes),
}

impl From<Frame> for Outgoing {
    fn from(f: Frame) -> Self {
        Outgoing::Frame(f)
    }
}

impl Outgoing {
    /// Number of bytes [`Outgoing::encode`] writes (including the 4-byte total size).
    pub fn encoded_len(&self) -> usize {
        match self {
            Outgoing::Frame(f) => f.encoded_len(),
            Outgoing::Send(c, p) => {
                frame_len_with(lone_len(Type::Send, SEND_TAG, c), Some(entry(p)))
            }
            Outgoing::Receipt(r) => {
                frame_len_with(lone_len(Type::SendReceipt, SEND_RECEIPT_TAG, r), None)
            }
            Outgoing::Message(m, p) => {
                frame_len_with(lone_len(Type::Message, MESSAGE_TAG, m), Some(entry(p)))
            }
        }
    }

    /// Appends the frame to `dst`, as [`encode_frame`] does.
    pub fn encode(&self, max_frame_size: usize, dst: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Outgoing::Frame(f) => encode_frame(&f.command, f.payload.as_ref(), max_frame_size, dst),
            Outgoing::Send(c, p) => {
                encode_lone(Type::Send, SEND_TAG, c, Some(entry(p)), max_frame_size, dst)
            }
            Outgoing::Receipt(r) => encode_lone(
                Type::SendReceipt,
                SEND_RECEIPT_TAG,
                r,
                None,
                max_frame_size,
                dst,
            ),
            Outgoing::Message(m, p) => encode_lone(
                Type::Message,
                MESSAGE_TAG,
                m,
                Some(entry(p)),
                max_frame_size,
                dst,
            ),
        }
    }

    /// The same frame as a [`Frame`] (its `BaseCommand` built).
    pub fn into_frame(self) -> Frame {
        match self {
            Outgoing::Frame(f) => f,
            Outgoing::Send(c, raw) => with_entry(
                BaseCommand {
                    send: Some(Box::new(c)),
                    ..commands::base(Type::Send)
                },
                raw,
            ),
            Outgoing::Receipt(r) => Frame::simple(BaseCommand {
                send_receipt: Some(Box::new(r)),
                ..commands::base(Type::SendReceipt)
            }),
            Outgoing::Message(m, raw) => with_entry(
                BaseCommand {
                    message: Some(Box::new(m)),
                    ..commands::base(Type::Message)
                },
                raw,
            ),
        }
    }
}

/// A frame of `command` carrying `raw`, an entry.
fn with_entry(command: BaseCommand, raw: Bytes) -> Frame {
    match Payload::from_raw(raw.clone()) {
        Ok(p) => Frame::with_payload(command, p),
        // an entry whose metadata does not decode: its bytes as they would be sent
        Err(_) => Frame::with_payload(command, Payload::opaque(raw)),
    }
}

/// An entry as the payload of a MESSAGE.
fn entry(raw: &Bytes) -> Body<'_> {
    Body {
        broker_entry_metadata: None,
        raw,
    }
}

/// Protobuf size of a `BaseCommand` holding only `ty` and `command` in field `tag`.
fn lone_len(ty: Type, tag: u32, command: &impl Message) -> usize {
    int32::encoded_len(TYPE_TAG, &(ty as i32)) + message::encoded_len(tag, command)
}

/// Encodes a frame whose `BaseCommand` holds only `ty` and `command` in field `tag` (the order
/// prost writes: fields by number, the type first).
fn encode_lone(
    ty: Type,
    tag: u32,
    command: &impl Message,
    payload: Option<Body<'_>>,
    max_frame_size: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    encode_with(
        lone_len(ty, tag, command),
        |dst| {
            int32::encode(TYPE_TAG, &(ty as i32), dst);
            message::encode(tag, command, dst);
        },
        payload,
        max_frame_size,
        dst,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::encode_entry;
    use crate::pulsar::{MessageIdData, MessageMetadata};
    use proptest::prelude::*;

    fn arb_id() -> impl Strategy<Value = MessageIdData> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(-1i32..64),
            proptest::option::of(0i32..1000),
            proptest::collection::vec(any::<i64>(), 0..3),
        )
            .prop_map(|(ledger_id, entry_id, partition, batch_index, ack_set)| {
                MessageIdData {
                    ledger_id,
                    entry_id,
                    partition,
                    batch_index,
                    ack_set,
                    ..Default::default()
                }
            })
    }

    fn arb_receipt() -> impl Strategy<Value = CommandSendReceipt> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(arb_id()),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |(producer_id, sequence_id, message_id, highest_sequence_id)| CommandSendReceipt {
                    producer_id,
                    sequence_id,
                    message_id,
                    highest_sequence_id,
                },
            )
    }

    fn arb_message() -> impl Strategy<Value = (CommandMessage, Bytes)> {
        (
            any::<u64>(),
            arb_id(),
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(any::<i64>(), 0..3),
            proptest::option::of(any::<u64>()),
            "[a-z]{0,12}",
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |(
                    consumer_id,
                    message_id,
                    redelivery_count,
                    ack_set,
                    consumer_epoch,
                    name,
                    seq,
                    data,
                )| {
                    let md = MessageMetadata {
                        producer_name: name,
                        sequence_id: seq,
                        ..Default::default()
                    };
                    (
                        CommandMessage {
                            consumer_id,
                            message_id,
                            redelivery_count,
                            ack_set,
                            consumer_epoch,
                        },
                        Payload::new(md, &data).raw,
                    )
                },
            )
    }

    fn arb_send() -> impl Strategy<Value = (CommandSend, Bytes)> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(1i32..1000),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<bool>()),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |(producer_id, sequence_id, num_messages, highest, marker, data)| {
                    (
                        CommandSend {
                            producer_id,
                            sequence_id,
                            num_messages,
                            highest_sequence_id: highest,
                            is_chunk: marker,
                            ..Default::default()
                        },
                        encode_entry(
                            &MessageMetadata {
                                producer_name: "p".into(),
                                sequence_id,
                                ..Default::default()
                            },
                            data.len(),
                            |b| b.extend_from_slice(&data),
                        ),
                    )
                },
            )
    }

    fn generic(o: &Outgoing) -> BytesMut {
        let f = o.clone().into_frame();
        let mut b = BytesMut::new();
        encode_frame(&f.command, f.payload.as_ref(), usize::MAX, &mut b).unwrap();
        b
    }

    fn lean(o: &Outgoing) -> BytesMut {
        let mut b = BytesMut::new();
        o.encode(usize::MAX, &mut b).unwrap();
        assert_eq!(b.len(), o.encoded_len());
        b
    }

    proptest! {
        #[test]
        fn a_receipt_encodes_as_its_frame(r in arb_receipt()) {
            let o = Outgoing::Receipt(r);
            prop_assert_eq!(lean(&o), generic(&o));
        }

        #[test]
        fn a_send_encodes_as_its_frame(s in arb_send()) {
            let o = Outgoing::Send(s.0, s.1);
            prop_assert_eq!(lean(&o), generic(&o));
        }

        #[test]
        fn a_message_encodes_as_its_frame(m in arb_message()) {
            let o = Outgoing::Message(m.0, m.1);
            prop_assert_eq!(lean(&o), generic(&o));
        }

        #[test]
        fn a_message_of_any_bytes_encodes_as_its_frame(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let o = Outgoing::Message(CommandMessage::default(), Bytes::from(raw));
            prop_assert_eq!(lean(&o), generic(&o));
        }
    }

    #[test]
    fn a_frame_that_is_too_large_is_refused_and_nothing_written() {
        let (m, p) = (
            CommandMessage::default(),
            Payload::new(MessageMetadata::default(), &[7u8; 100]).raw,
        );
        let o = Outgoing::Message(m, p);
        let mut b = BytesMut::new();
        assert!(matches!(
            o.encode(50, &mut b),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(b.is_empty());
    }

    #[test]
    fn a_plain_frame_encodes_as_before() {
        let f = Frame::simple(commands::ping());
        let o = Outgoing::from(f.clone());
        let mut b = BytesMut::new();
        encode_frame(&f.command, None, usize::MAX, &mut b).unwrap();
        assert_eq!(lean(&o), b);
        assert_eq!(o.into_frame(), f);
    }
}
