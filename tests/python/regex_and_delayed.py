"""Regex (pattern) subscriptions over the namespace's topics, and delayed delivery on a Shared
subscription."""
import re
import datetime
import pulsar
from common import *

url, _ = urls()
c = client(url)
prefix = f"rx-{uuid.uuid4().hex[:6]}"
topics = [f"persistent://public/default/{prefix}-{i}" for i in range(3)]
for t in topics:
    c.create_producer(t).send(t.encode())
cons = c.subscribe(re.compile(f"persistent://public/default/{prefix}-.*"), "s",
                   initial_position=pulsar.InitialPosition.Earliest)
got = sorted(m.data().decode() for m in receive_n(cons, 3))
check(got == sorted(topics), f"pattern subscription sees every matching topic: {got}")
cons.close()

t = topic("delayed")
cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
p = c.create_producer(t, batching_enabled=False)
start = time.time()
p.send(b"later", deliver_after=datetime.timedelta(seconds=2))
p.send(b"now")
first = cons.receive(timeout_millis=RECEIVE_MS)
cons.acknowledge(first)
check(first.data() == b"now", f"the undelayed message comes first: {first.data()}")
second = cons.receive(timeout_millis=RECEIVE_MS)
cons.acknowledge(second)
waited = time.time() - start
check(second.data() == b"later" and waited >= 1.8, f"delayed message after ~2 s (got it after {waited:.2f} s)")
c.close()
done("regex_and_delayed")
