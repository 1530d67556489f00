"""Exclusive: one consumer gets everything; a second consumer is refused with ConsumerBusy."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("excl")
c1 = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive,
                 initial_position=pulsar.InitialPosition.Earliest)
try:
    c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive)
    raise AssertionError("second exclusive consumer must be refused")
except pulsar.ConsumerBusy:
    pass
p = c.create_producer(t)
bodies = [f"e-{i}".encode() for i in range(50)]
send_all(p, bodies)
check([m.data() for m in receive_n(c1, 50)] == bodies, "exclusive consumer receives all in order")
c1.close()
# After it left, a new exclusive consumer may attach.
c2 = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive)
expect_nothing(c2)
c.close()
done("sub_exclusive")
