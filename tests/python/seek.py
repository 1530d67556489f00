"""Seek a subscription by message id and by publish time."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("seek")
consumer = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer(t, batching_enabled=False)
first = [f"a-{i}".encode() for i in range(10)]
ids = send_all(p, first)
time.sleep(1.2)
t_mid = int(time.time() * 1000)
time.sleep(0.2)
second = [f"b-{i}".encode() for i in range(10)]
send_all(p, second)
everything = first + second

got = receive_n(consumer, 20)
check([m.data() for m in got] == everything, "initial pass")

# Seek by message id: the subscription rewinds so message 5 is delivered again.
consumer.seek(ids[5])
again = []
deadline = time.time() + 15
while time.time() < deadline:
    try:
        m = consumer.receive(timeout_millis=1000 if len(again) >= 14 else 2000)
    except pulsar.Timeout:
        if len(again) >= 14:
            break
        continue
    consumer.acknowledge(m)
    again.append(m.data())
# The broker restarts delivery at message 5; the C++ client drops the sought message itself
# (it treats the id as already consumed), so 5 may or may not be shown.
check(again == everything[5:] or again == everything[6:],
      f"after seek to id 5 the rest is redelivered in order: {again}")

# Seek by time: everything published after t_mid comes back.
consumer.seek(t_mid)
by_time = receive_until(consumer, 10, 15)
check(by_time == second, f"after seek to time, the second half: {by_time[:4]}")
expect_nothing(consumer, 1000)

# Seek to exactly the last message's publish time: as Pulsar (the cursor goes after the newest
# entry published strictly before it), the messages published in that millisecond come back
# (MultiTopicsConsumerTest.testSeekToNewerPosition); one millisecond later, nothing.
t_last = got[-1].publish_timestamp()
consumer.seek(t_last)
tail = [m.data() for m in got if m.publish_timestamp() >= t_last]
last = receive_until(consumer, len(tail), 15)
check(last == tail, f"after seek to the last publish time: {last} (expected {tail})")
expect_nothing(consumer, 1000)
consumer.seek(t_last + 1)
expect_nothing(consumer, 1000)
c.close()
done("seek")
