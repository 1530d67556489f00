//! The fields of a stored entry's `MessageMetadata` that a dispatcher reads, decoded without the
//! rest (producer name, properties, schema version...: strings and vectors a dispatch does not
//! need). Other fields are skipped by their wire type, as protobuf does with unknown fields.

use bytes::Bytes;
use prost::Message;

use crate::error::FrameError;
use crate::frame::metadata_range;

/// A partial `MessageMetadata` (same field numbers and types).
#[derive(Clone, PartialEq, Message)]
pub struct EntryFields {
    /// `partition_key` (a string on the wire; kept as its bytes).
    #[prost(bytes = "bytes", optional, tag = "6")]
    pub partition_key: Option<Bytes>,
    /// `num_messages_in_batch`.
    #[prost(int32, optional, tag = "11")]
    pub num_messages_in_batch: Option<i32>,
    /// `ordering_key`.
    #[prost(bytes = "bytes", optional, tag = "18")]
    pub ordering_key: Option<Bytes>,
    /// `deliver_at_time`.
    #[prost(int64, optional, tag = "19")]
    pub deliver_at_time: Option<i64>,
    /// `num_chunks_from_msg`.
    #[prost(int32, optional, tag = "27")]
    pub num_chunks_from_msg: Option<i32>,
    /// `chunk_id`.
    #[prost(int32, optional, tag = "29")]
    pub chunk_id: Option<i32>,
}

impl EntryFields {
    /// Decodes the fields from an entry (`[metadata_size][MessageMetadata][data]`); the keys are
    /// slices of `raw`, not copies.
    pub fn parse(raw: &Bytes) -> Result<Self, FrameError> {
        let md = metadata_range(raw)?;
        EntryFields::decode(raw.slice(md)).map_err(FrameError::InvalidMetadata)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::frame::Payload;
    use crate::pulsar::{KeyValue, MessageMetadata};
    use proptest::prelude::*;

    proptest! {
        /// Every field reads as the full decode reads it, whatever else the metadata holds.
        #[test]
        fn fields_read_as_the_full_metadata(
            name in "[a-z]{0,10}",
            key in proptest::option::of("[a-z0-9]{0,10}"),
            ordering in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            n in proptest::option::of(0i32..1000),
            at in proptest::option::of(any::<i64>()),
            chunks in proptest::option::of(0i32..10),
            chunk in proptest::option::of(0i32..10),
            props in proptest::collection::vec(("[a-z]{1,4}", "[a-z]{0,4}"), 0..3),
            data in proptest::collection::vec(any::<u8>(), 0..50),
        ) {
            let md = MessageMetadata {
                producer_name: name,
                partition_key: key,
                ordering_key: ordering.map(Bytes::from),
                num_messages_in_batch: n,
                deliver_at_time: at,
                num_chunks_from_msg: chunks,
                chunk_id: chunk,
                properties: props.into_iter().map(|(key, value)| KeyValue { key, value }).collect(),
                ..Default::default()
            };
            let raw = Payload::new(md, &data).raw;
            let full = Payload::from_raw(raw.clone()).unwrap().metadata;
            let f = EntryFields::parse(&raw).unwrap();
            prop_assert_eq!(f.partition_key.as_deref(), full.partition_key.as_deref().map(str::as_bytes));
            prop_assert_eq!(f.ordering_key, full.ordering_key);
            prop_assert_eq!(f.num_messages_in_batch, full.num_messages_in_batch);
            prop_assert_eq!(f.deliver_at_time, full.deliver_at_time);
            prop_assert_eq!(f.num_chunks_from_msg, full.num_chunks_from_msg);
            prop_assert_eq!(f.chunk_id, full.chunk_id);
        }

        /// Arbitrary bytes give an error or fields, never a panic.
        #[test]
        fn any_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = EntryFields::parse(&Bytes::from(raw));
        }
    }

    #[test]
    fn a_short_or_overlong_layout_is_an_error() {
        assert!(EntryFields::parse(&Bytes::from_static(&[0, 0])).is_err());
        assert!(EntryFields::parse(&Bytes::from_static(&[0, 0, 0, 9, 1])).is_err());
    }
}
