//! The compactor over an in-memory topic: latest value per key, tombstones, batches compacted
//! per message, and a key map bounded whatever the number of keys.

use bytes::Bytes;
use strata_proto::batch::build_batch;
use strata_proto::frame::Payload;
use strata_proto::pulsar::{CompressionType, MessageMetadata, SingleMessageMetadata};

use super::compactor::write_compacted;
use super::messages::{EntryKind, classify};
use super::*;
use crate::storage::MemStorage;

/// A topic as a list of entries.
struct VecScan(Vec<(Position, Bytes)>);

#[async_trait::async_trait]
impl Scan for VecScan {
    async fn read_after(
        &self,
        pos: Position,
        max: u64,
    ) -> Result<Vec<(Position, Bytes)>, CompactionError> {
        Ok(self
            .0
            .iter()
            .filter(|(p, _)| *p > pos)
            .take(max as usize)
            .cloned()
            .collect())
    }
}

fn single(key: &str, value: &[u8]) -> Bytes {
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 0,
        publish_time: 1,
        partition_key: Some(key.into()),
        null_value: value.is_empty().then_some(true),
        ..Default::default()
    };
    Payload::new(md, value).raw
}

fn batch(msgs: &[(String, Vec<u8>)]) -> Bytes {
    batch_with(msgs, CompressionType::None)
}

fn batch_with(msgs: &[(String, Vec<u8>)], codec: CompressionType) -> Bytes {
    let mds: Vec<SingleMessageMetadata> = msgs
        .iter()
        .map(|(k, v)| SingleMessageMetadata {
            partition_key: Some(k.clone()),
            payload_size: v.len() as i32,
            ..Default::default()
        })
        .collect();
    let data = build_batch(mds.iter().zip(msgs.iter().map(|(_, v)| v.as_slice())));
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 0,
        publish_time: 1,
        num_messages_in_batch: Some(msgs.len() as i32),
        compression: Some(codec as i32),
        uncompressed_size: Some(data.len() as u32),
        ..Default::default()
    };
    let compressed = strata_proto::compression::compress(codec, &data).unwrap();
    Payload::new(md, &compressed).raw
}

/// (original position, keys) of every compacted entry.
async fn compacted(storage: &MemStorage, v: &CompactedView) -> Vec<(Position, Vec<String>)> {
    let entries = v
        .read_after(storage, Position::EARLIEST, v.entries)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(p, e)| match classify(&e) {
            EntryKind::Messages(m) => (p, m.into_iter().filter_map(|m| m.key).collect()),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn latest_per_key_tombstones_and_batches() {
    let entries = vec![
        single("a", b"a1"),
        single("b", b"b1"),
        single("a", b"a2"),
        single("c", b"c1"),
        single("c", b""), // tombstone
        batch(&[("b".into(), b"b2".to_vec()), ("d".into(), b"d1".to_vec())]),
        single("d", b"d2"),
    ];
    let scan = VecScan(
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| (Position::new(7, i as i64), e))
            .collect(),
    );
    let storage = MemStorage::default();
    let horizon = Position::new(7, 6);
    let r = write_compacted(&scan, horizon, &storage, 1 << 20)
        .await
        .unwrap();
    assert_eq!(r.view.horizon, horizon);
    let got = compacted(&storage, &r.view).await;
    assert_eq!(
        got,
        vec![
            (Position::new(7, 2), vec!["a".to_owned()]),
            (Position::new(7, 5), vec!["b".to_owned()]), // the batch keeps b2 only
            (Position::new(7, 6), vec!["d".to_owned()]),
        ]
    );
    // readers resume by original position
    let after = r
        .view
        .read_after(&storage, Position::new(7, 2), 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].0, Position::new(7, 5));
}

#[tokio::test]
async fn compressed_batches_are_compacted_per_message() {
    for codec in [
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ] {
        let entries = [
            batch_with(
                &[("a".into(), b"a1".to_vec()), ("b".into(), b"b1".to_vec())],
                codec,
            ),
            batch_with(
                &[("a".into(), b"a2".to_vec()), ("c".into(), b"c1".to_vec())],
                codec,
            ),
        ];
        let scan = VecScan(
            entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| (Position::new(3, i as i64), e))
                .collect(),
        );
        let storage = MemStorage::default();
        let r = write_compacted(&scan, Position::new(3, 1), &storage, 1 << 20)
            .await
            .unwrap();
        let got = compacted(&storage, &r.view).await;
        assert_eq!(
            got,
            vec![
                (Position::new(3, 0), vec!["b".to_owned()]),
                (Position::new(3, 1), vec!["a".to_owned(), "c".to_owned()]),
            ],
            "{codec:?}"
        );
    }
}

/// One million keys in batches of 100, then 1000 of them overwritten and 1000 removed; a key
/// map budget of 24 MiB forces several passes. The map never exceeds the budget by more than
/// the one key that overflowed it.
#[tokio::test]
async fn a_million_keys_with_a_bounded_key_map() {
    const KEYS: usize = 1_000_000;
    const PER_BATCH: usize = 100;
    let mut entries = Vec::new();
    for b in 0..KEYS / PER_BATCH {
        let msgs: Vec<(String, Vec<u8>)> = (0..PER_BATCH)
            .map(|i| (format!("key-{:07}", b * PER_BATCH + i), vec![1u8]))
            .collect();
        entries.push(batch(&msgs));
    }
    let overwrites: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (format!("key-{i:07}"), vec![2u8]))
        .collect();
    entries.push(batch(&overwrites));
    for i in 1000..2000 {
        entries.push(single(&format!("key-{i:07}"), b""));
    }
    let n = entries.len();
    let scan = VecScan(
        entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| (Position::new(1, i as i64), e))
            .collect(),
    );
    let storage = MemStorage::default();
    let budget = 24 << 20;
    let r = write_compacted(&scan, Position::new(1, n as i64 - 1), &storage, budget)
        .await
        .unwrap();
    assert!(
        r.peak_key_map_bytes <= budget + 100,
        "{}",
        r.peak_key_map_bytes
    );
    assert!(r.passes > 1, "passes {}", r.passes);
    let got = compacted(&storage, &r.view).await;
    let kept: usize = got.iter().map(|(_, k)| k.len()).sum();
    assert_eq!(kept, KEYS - 1000);
    // batches 0-9 lost their keys to the overwrite batch, 10-19 to the tombstones
    assert_eq!(got[0].0, Position::new(1, 20));
    assert_eq!(
        got.last().map(|(p, k)| (p.entry as usize, k.len())),
        Some((KEYS / PER_BATCH, 1000))
    );
    println!(
        "1M keys: {} passes, peak key map {} bytes (budget {budget}), {} compacted entries",
        r.passes, r.peak_key_map_bytes, r.view.entries
    );
}
