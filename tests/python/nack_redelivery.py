"""Negative acknowledgement: the message comes back with redelivery_count 1, 2, ...; acked
messages do not come back."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("nack")
consumer = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared,
                       negative_ack_redelivery_delay_ms=200,
                       initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer(t, batching_enabled=False)
send_all(p, [b"keep", b"retry"])
counts = []
for _ in range(6):
    m = consumer.receive(timeout_millis=RECEIVE_MS)
    if m.data() == b"keep":
        check(m.redelivery_count() == 0, "acked message delivered once")
        consumer.acknowledge(m)
        continue
    counts.append(m.redelivery_count())
    if len(counts) < 3:
        consumer.negative_acknowledge(m)
    else:
        consumer.acknowledge(m)
        break
check(counts == [0, 1, 2], f"redelivery_count increments on each redelivery: {counts}")
expect_nothing(consumer, 1500)
c.close()
done("nack_redelivery")
