"""A partitioned topic with 4 partitions: messages spread over the partitions, per-key order
holds, and a consumer on the partitioned topic receives everything."""
import collections
import pulsar
from common import *

url, http = urls()
check(http is not None, "needs the HTTP URL to create the partitioned topic")
c = client(url)
t = topic("parted")
create_partitioned(http, t, 4)
check(len(c.get_topic_partitions(t)) == 4, f"4 partitions: {c.get_topic_partitions(t)}")
consumer = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest,
                       consumer_type=pulsar.ConsumerType.Shared)
p = c.create_producer(t, batching_enabled=True, batching_max_publish_delay_ms=5)
bodies, keys = [], []
for i in range(400):
    k = f"k{i % 16}"
    bodies.append(f"{k}:{i}".encode())
    keys.append(k)
for b, k in zip(bodies, keys):
    p.send_async(b, None, partition_key=k)
p.flush()
# Without a key, round robin covers all partitions.
send_all(p, [f"nokey-{i}".encode() for i in range(40)])
got = receive_n(consumer, 440)
parts = collections.Counter(m.topic_name() for m in got)
check(len(parts) == 4, f"messages from 4 partitions: {dict(parts)}")
by_key = collections.defaultdict(list)
for m in got:
    if m.partition_key():
        by_key[m.partition_key()].append(int(m.data().decode().split(":")[1]))
        check(m.topic_name().endswith(f"-partition-{m.message_id().partition()}"), "partition in id")
for k, seqs in by_key.items():
    check(seqs == sorted(seqs), f"{k} in order within its partition")
check(sorted(m.data() for m in got) == sorted(bodies + [f"nokey-{i}".encode() for i in range(40)]),
      "every message once")
c.close()
done("partitioned")
