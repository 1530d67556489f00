"""Every compression codec, batched and not, round-trips through the broker."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
for codec in [pulsar.CompressionType.LZ4, pulsar.CompressionType.ZLib,
              pulsar.CompressionType.ZSTD, pulsar.CompressionType.SNAPPY]:
    for batching in [False, True]:
        t = topic(f"comp-{str(codec).split('.')[-1].lower()}")
        consumer = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
        producer = c.create_producer(t, compression_type=codec, batching_enabled=batching)
        # Compressible and incompressible payloads. (No empty payload: the C++ client cannot
        # decompress an empty zlib message it produced itself.)
        bodies = [(f"payload-{i}-" * 50).encode() for i in range(100)] + [bytes(range(256)) * 4, b"x"]
        send_all(producer, bodies)
        got = receive_n(consumer, len(bodies))
        check([m.data() for m in got] == bodies, f"{codec} batching={batching}: payloads intact")
        producer.close()
        consumer.close()
c.close()
done("compression")
