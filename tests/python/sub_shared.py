"""Shared: two consumers split the messages, each message is delivered once, both get some."""
import threading
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("shared")
got = {"a": [], "b": []}
lock = threading.Lock()


def listener(name):
    def on(consumer, msg):
        with lock:
            got[name].append(msg.data())
        consumer.acknowledge(msg)
    return on


ca = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10,
                 message_listener=listener("a"), consumer_name="a")
cb = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10,
                 message_listener=listener("b"), consumer_name="b")
p = c.create_producer(t, batching_enabled=False)
bodies = [f"s-{i}".encode() for i in range(400)]
send_all(p, bodies)
deadline = time.time() + 20
while len(got["a"]) + len(got["b"]) < len(bodies) and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
allgot = got["a"] + got["b"]
check(sorted(allgot) == sorted(bodies), f"every message exactly once ({len(allgot)} received)")
check(len(got["a"]) > 0 and len(got["b"]) > 0, f"both consumers served: {len(got['a'])}/{len(got['b'])}")
c.close()
done("sub_shared")
