"""Key_Shared with 3 consumers joining and leaving while messages flow: every message arrives,
each key is served by one consumer at a time, and per key the first deliveries are in order."""
import threading
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("keyshared")
KEYS = [f"key-{k}" for k in range(24)]
lock = threading.Lock()
log = []  # (consumer, key, seq, redelivery_count) in global receive order


def listener(name):
    def on(consumer, msg):
        key = msg.partition_key()
        seq = int(msg.data().decode().split(":")[1])
        with lock:
            log.append((name, key, seq, msg.redelivery_count()))
        consumer.acknowledge(msg)
    return on


def join(name):
    return c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared, consumer_name=name,
                       initial_position=pulsar.InitialPosition.Earliest, receiver_queue_size=20,
                       message_listener=listener(name))


p = c.create_producer(t, batching_enabled=True, batching_type=pulsar.BatchingType.KeyBased,
                      batching_max_publish_delay_ms=5)
seq = {k: 0 for k in KEYS}


def publish(rounds):
    bodies, keys = [], []
    for _ in range(rounds):
        for k in KEYS:
            bodies.append(f"{k}:{seq[k]}".encode())
            keys.append(k)
            seq[k] += 1
    for b, k in zip(bodies, keys):
        p.send_async(b, None, partition_key=k)
    p.flush()


def settle():
    """Waits until everything published so far was received (and so acknowledged soon after)."""
    want = sum(seq.values())
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            if len({(k, s) for _, k, s, _ in log}) >= want:
                break
        time.sleep(0.05)
    time.sleep(0.5)  # let the clients' grouped acks reach the broker


# Joins and leaves while messages are in flight (keys may stay with their consumer while it
# still has unacknowledged messages of them) ...
consumers = {"c1": join("c1")}
publish(10)
consumers["c2"] = join("c2")
publish(10)
consumers["c3"] = join("c3")
publish(10)
consumers.pop("c1").close()
publish(10)
consumers.pop("c2").close()
publish(10)
# ... and a join once the subscription is idle: the newcomer must get its share of the keys.
settle()
consumers["c1b"] = join("c1b")
time.sleep(0.3)
for _ in range(10):
    publish(1)
    time.sleep(0.02)

total = sum(seq.values())
deadline = time.time() + 30
while time.time() < deadline:
    with lock:
        distinct = {(k, s) for _, k, s, _ in log}
    if len(distinct) == total:
        break
    time.sleep(0.1)
with lock:
    entries = list(log)
distinct = {(k, s) for _, k, s, _ in entries}
check(len(distinct) == total, f"no consumer stuck, nothing lost: {len(distinct)}/{total} distinct")
served = {n for n, _, _, _ in entries}
check({"c1", "c3", "c1b"} <= served and len(served) >= 3,
      f"consumers that owned keys were served: {sorted(served)}")
for k in KEYS:
    firsts, seen = [], set()
    for _, kk, s, _ in entries:
        if kk == k and s not in seen:
            seen.add(s)
            firsts.append(s)
    check(firsts == list(range(seq[k])), f"{k}: first deliveries out of order: {firsts[:20]}")
dups = len(entries) - len(distinct)
print(f"{len(entries)} deliveries, {dups} redeliveries, consumers {sorted(served)}")
c.close()
done("sub_key_shared")
