"""Dead-letter policy: a message negatively acknowledged more than max_redeliver_count times is
moved to the dead-letter topic by the client; the others are consumed normally."""
import pulsar
from common import *

url, _ = urls()
c = client(url)
t = topic("dlq")
dlq = t + "-my-dlq"
dlq_consumer = c.subscribe(dlq, "dlq-sub", initial_position=pulsar.InitialPosition.Earliest)
consumer = c.subscribe(
    t, "s", consumer_type=pulsar.ConsumerType.Shared, negative_ack_redelivery_delay_ms=100,
    initial_position=pulsar.InitialPosition.Earliest,
    dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(max_redeliver_count=2, dead_letter_topic=dlq))
p = c.create_producer(t, batching_enabled=False)
send_all(p, [b"good-1", b"poison", b"good-2"], properties={"origin": "test"})
good, poison_seen, dead = [], [], None
deadline = time.time() + 25
while time.time() < deadline and dead is None:
    try:
        m = consumer.receive(timeout_millis=500)
        if m.data() == b"poison":
            poison_seen.append(m.redelivery_count())
            consumer.negative_acknowledge(m)
        else:
            good.append(m.data())
            consumer.acknowledge(m)
    except pulsar.Timeout:
        pass
    if len(poison_seen) >= 2:
        try:
            dead = dlq_consumer.receive(timeout_millis=200)
        except pulsar.Timeout:
            pass
check(sorted(good) == [b"good-1", b"good-2"], f"good messages consumed: {good}")
check(poison_seen[:2] == [0, 1] and poison_seen == sorted(poison_seen) and len(poison_seen) <= 3,
      f"poison redelivered with increasing counts up to max_redeliver_count: {poison_seen}")
check(dead is not None, f"poison message reached the dead-letter topic (seen {poison_seen})")
d = dead
check(d.data() == b"poison", "poison message is on the dead-letter topic")
check(d.properties().get("origin") == "test", f"properties kept: {d.properties()}")
dlq_consumer.acknowledge(d)
expect_nothing(consumer, 1500)
c.close()
done("dead_letter")
