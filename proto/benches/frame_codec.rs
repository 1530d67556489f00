//! Frame codec hot path: decoding and encoding SEND frames with 1 KiB and 64 KiB payloads,
//! against a baseline of what any decoder must do anyway (copy the bytes once and CRC32C them).
//! Compare each `decode`/`encode` time with `baseline` of the same size.

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_proto::commands;
use strata_proto::frame::{Frame, Payload, PulsarCodec};
use strata_proto::pulsar::MessageMetadata;
use tokio_util::codec::{Decoder, Encoder};

fn send_frame(size: usize) -> Frame {
    let md = MessageMetadata {
        producer_name: "bench-producer".into(),
        sequence_id: 42,
        publish_time: 1_700_000_000_000,
        num_messages_in_batch: Some(1),
        ..Default::default()
    };
    Frame::with_payload(commands::send(1, 42, 1), Payload::new(md, &vec![7u8; size]))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for size in [1024usize, 64 * 1024] {
        let frame = send_frame(size);
        let wire: Bytes = frame.to_bytes().unwrap_or_default();
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("baseline_copy_crc", size),
            &wire,
            |b, w| {
                b.iter(|| {
                    let copy = BytesMut::from(&w[..]);
                    std::hint::black_box(strata_common::crc::crc32c(&copy))
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("decode", size), &wire, |b, w| {
            let mut codec = PulsarCodec::new();
            b.iter(|| {
                let mut buf = BytesMut::from(&w[..]);
                std::hint::black_box(codec.decode(&mut buf).ok().flatten())
            })
        });
        g.bench_with_input(BenchmarkId::new("encode", size), &frame, |b, f| {
            let mut codec = PulsarCodec::new();
            let mut buf = BytesMut::with_capacity(wire.len() * 2);
            b.iter(|| {
                buf.clear();
                let _ = codec.encode(f.clone(), &mut buf);
                std::hint::black_box(buf.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
