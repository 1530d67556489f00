"""Acknowledgements: cumulative, batch-index acks (part of a batch acknowledged, the rest comes
back after a reconnect), several ids per ACK (the client groups them), unsubscribe, and
get_last_message_id."""
import pulsar
from common import *

url, _ = urls()
c = client(url)

# Cumulative ack on an exclusive subscription.
t = topic("cumulative")
p = c.create_producer(t, batching_enabled=False)
bodies = [f"c-{i}".encode() for i in range(10)]
ids = send_all(p, bodies)
cons = c.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
got = receive_n(cons, 10, ack=False)
cons.acknowledge_cumulative(got[5])
cons.close()
cons = c.subscribe(t, "s")
rest = [m.data() for m in receive_n(cons, 4)]
check(rest == bodies[6:], f"after cumulative ack of 5, 6..9 come back: {rest}")
expect_nothing(cons)
last = cons.get_last_message_id()
check(str(last) == str(ids[-1]), f"get_last_message_id {last} == last sent {ids[-1]}")
cons.unsubscribe()
# After unsubscribe the subscription starts over (from latest by default: nothing).
cons = c.subscribe(t, "s")
expect_nothing(cons)
cons.close()

# Batch-index acknowledgement: ack even messages of one batch, reconnect, odd ones return.
t = topic("batch-index")
p = c.create_producer(t, batching_enabled=True, batching_max_messages=10,
                      batching_max_publish_delay_ms=1000)
bodies = [f"b-{i}".encode() for i in range(10)]
ids = send_all(p, bodies)
check(len({(i.ledger_id(), i.entry_id()) for i in ids}) == 1, "one batch")
cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared, batch_index_ack_enabled=True,
                   initial_position=pulsar.InitialPosition.Earliest)
got = receive_n(cons, 10, ack=False)
for m in got[::2]:
    cons.acknowledge(m)
time.sleep(0.5)
cons.close()
cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared, batch_index_ack_enabled=True)
back = sorted(m.data() for m in receive_n(cons, 5))
check(back == sorted(bodies[1::2]), f"only the unacknowledged half of the batch returns: {back}")
expect_nothing(cons)
cons.close()

# Many individual acks (grouped into multi-id ACK commands by the client) survive a reconnect.
t = topic("many-acks")
p = c.create_producer(t, batching_enabled=False)
bodies = [f"m-{i}".encode() for i in range(200)]
send_all(p, bodies)
cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared,
                   initial_position=pulsar.InitialPosition.Earliest)
got = receive_n(cons, 200, ack=False)
for m in got:
    if int(m.data().decode().split("-")[1]) % 3 != 0:
        cons.acknowledge(m)
time.sleep(0.5)
cons.close()
cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
back = sorted(int(m.data().decode().split("-")[1]) for m in receive_n(cons, 67))
check(back == list(range(0, 200, 3)), f"exactly the unacknowledged messages return: {back[:8]}")
expect_nothing(cons)
c.close()
done("acks")
