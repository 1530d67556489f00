"""Broker behaviour the official C++ client's own test suite relies on (issue #17), checked with
the official Python client (same C++ core). One scenario per run, named by the third argument:

  fencing        ExclusiveWithFencing takes the topic: the connected Exclusive producer is fenced
                 (its sends fail ProducerFenced), a queued WaitForExclusive producer's creation
                 fails ProducerFenced; a later WaitForExclusive one is granted when it leaves.
  restart        an Exclusive producer survives a broker restart (it reconnects with its topic
                 epoch and keeps the topic; another Exclusive one is still refused). Prints READY
                 and waits for a line on stdin while the test restarts the broker.
  dlq_init_sub   the dead-letter producer's initial subscription is created on the dead-letter
                 topic before its first message, so a consumer subscribing later gets them all.
  last_id        get_last_message_id: -1:-1 on an empty topic, the batch's last index after a
                 batch.
  empty_sub      subscribing with an empty subscription name fails (the client's
                 InvalidConfiguration, from the broker's ProducerBusy answer).
  key_shared_split  (broker with key_shared_use_consistent_hashing = false) two Key_Shared
                 consumers joining two topics in the same order get the same keys on both.
  partitions     a producer on a partition beyond a partitioned topic's count fails
                 TopicNotFound; max_producers_per_topic given when the namespace is created holds
                 (ProducerBusy).
  sticky_assign  a Key_Shared Sticky consumer with ranges overlapping another consumer's is
                 refused with ConsumerAssignError.
"""
import threading
import pulsar
from common import *

url, http = urls()
scenario = sys.argv[3]
Mode = pulsar.ProducerAccessMode


def fails_with(exc, what, f):
    try:
        f()
    except exc:
        return
    raise AssertionError(f"{what}: no {exc.__name__}")


def fencing(c):
    t = topic("fencing")
    p1 = c.create_producer(t, producer_name="p1", access_mode=Mode.Exclusive, batching_enabled=False)
    p1.send(b"one")
    outcome = {}

    def queued():
        try:
            outcome["p2"] = c.create_producer(t, producer_name="p2", access_mode=Mode.WaitForExclusive)
        except Exception as e:  # noqa: BLE001 - the type is what is checked
            outcome["p2"] = e

    th = threading.Thread(target=queued, daemon=True)
    th.start()
    time.sleep(1.0)
    check("p2" not in outcome, "WaitForExclusive producer queued behind the Exclusive one")
    p3 = c.create_producer(t, producer_name="p3", access_mode=Mode.ExclusiveWithFencing,
                           batching_enabled=False)
    p3.send(b"three")
    th.join(15)
    check(isinstance(outcome.get("p2"), pulsar.ProducerFenced),
          f"queued producer fenced: {outcome.get('p2')!r}")
    fails_with(pulsar.ProducerFenced, "fenced Exclusive producer sends", lambda: p1.send(b"late"))
    fails_with(pulsar.ProducerFenced, "Exclusive next to ExclusiveWithFencing",
               lambda: c.create_producer(t, producer_name="p4", access_mode=Mode.Exclusive))
    granted = {}

    def later():
        granted["p5"] = c.create_producer(t, producer_name="p5", access_mode=Mode.WaitForExclusive,
                                          batching_enabled=False)

    th = threading.Thread(target=later, daemon=True)
    th.start()
    time.sleep(1.0)
    check("p5" not in granted, "second WaitForExclusive producer queued")
    p3.close()
    th.join(15)
    check("p5" in granted, "WaitForExclusive producer granted once the fencing one left")
    granted["p5"].send(b"five")
    r = c.create_reader(t, pulsar.MessageId.earliest)
    got = [r.read_next(RECEIVE_MS).data() for _ in range(3)]
    check(got == [b"one", b"three", b"five"], f"stored: {got}")


def restart(c):
    t = topic("restart")
    p1 = c.create_producer(t, producer_name="p1", access_mode=Mode.Exclusive, batching_enabled=False)
    p1.send(b"before")
    print("READY", flush=True)
    check(sys.stdin.readline().strip() == "GO", "told to go on")
    p1.send(b"after")
    fails_with(pulsar.ProducerFenced, "second Exclusive producer after the restart",
               lambda: c.create_producer(t, producer_name="p2", access_mode=Mode.Exclusive))
    r = c.create_reader(t, pulsar.MessageId.earliest)
    got = [r.read_next(RECEIVE_MS).data() for _ in range(2)]
    check(got == [b"before", b"after"], f"stored: {got}")


def dlq_init_sub(c):
    t = topic("dlq-init")
    dlq = t + "-DLQ"
    policy = pulsar.ConsumerDeadLetterPolicy(max_redeliver_count=1, dead_letter_topic=dlq,
                                             initial_subscription_name="init-sub")
    consumer = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared,
                           negative_ack_redelivery_delay_ms=100, dead_letter_policy=policy)
    p = c.create_producer(t, batching_enabled=False)
    send_all(p, [b"m0", b"m1", b"m2"])
    deadline = time.time() + 20
    nacked = 0
    while time.time() < deadline and nacked < 6:
        try:
            m = consumer.receive(timeout_millis=500)
            consumer.negative_acknowledge(m)
            nacked += 1
        except pulsar.Timeout:
            pass
    # Subscribed only now: the subscription was made when the dead-letter producer was.
    late = c.subscribe(dlq, "init-sub", initial_position=pulsar.InitialPosition.Latest)
    got = sorted(late.receive(timeout_millis=RECEIVE_MS).data() for _ in range(3))
    check(got == [b"m0", b"m1", b"m2"], f"initial subscription holds the dead letters: {got}")
    # Closed before the client: the client library crashes at exit while a consumer's
    # dead-letter producer is still sending.
    late.close()
    consumer.close()


def last_id(c):
    t = topic("last-id")
    consumer = c.subscribe(t, "s")
    empty = consumer.get_last_message_id()
    check((empty.ledger_id(), empty.entry_id(), empty.batch_index()) == (-1, -1, -1),
          f"empty topic: {empty}")
    p = c.create_producer(t, batching_enabled=True, batching_max_messages=3,
                          batching_max_publish_delay_ms=60_000)
    for i in range(3):
        p.send_async(f"b{i}".encode(), None)
    p.flush()
    last = consumer.get_last_message_id()
    check(last.entry_id() >= 0 and last.batch_index() == 2, f"after a batch of 3: {last}")


def empty_sub(c):
    fails_with(pulsar.InvalidConfiguration, "empty subscription name",
               lambda: c.subscribe(topic("empty-sub"), ""))


def key_shared_split(c):
    t1, t2 = topic("ks-split-a"), topic("ks-split-b")
    consumers = [c.subscribe([t1, t2], "ks", consumer_type=pulsar.ConsumerType.KeyShared,
                             consumer_name=f"c{i}") for i in range(2)]
    keys = [f"key-{i}" for i in range(20)]
    for t in (t1, t2):
        p = c.create_producer(t, batching_enabled=False)
        for k in keys:
            p.send(k.encode(), partition_key=k)
    owner = {}
    for i, cons in enumerate(consumers):
        while True:
            try:
                m = cons.receive(timeout_millis=1500)
            except pulsar.Timeout:
                break
            cons.acknowledge(m)
            owner.setdefault(m.data().decode(), set()).add((i, m.topic_name()))
    check(sorted(owner) == sorted(keys), f"every key delivered: {sorted(owner)}")
    for k, got in owner.items():
        check(len({i for i, _ in got}) == 1 and len(got) == 2,
              f"{k} on one consumer for both topics: {got}")
    check(len({next(iter(g))[0] for g in owner.values()}) == 2, "both consumers own keys")


def sticky_assign(c):
    t = topic("sticky")
    sticky = pulsar.KeySharedMode.Sticky

    def sub(ranges, name):
        policy = pulsar.ConsumerKeySharedPolicy(key_shared_mode=sticky, sticky_ranges=ranges)
        return c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                           consumer_name=name, key_shared_policy=policy)

    # (No ranges at all is refused by this client itself; the broker's answer to that is in the
    # subscription unit tests and the C++ suite's KeySharedPolicyTest.ResultConsumerAssignError.)
    sub([(0, 32767)], "b")
    fails_with(pulsar.ConsumerAssignError, "overlapping sticky ranges",
               lambda: sub([(100, 40000)], "c"))
    sub([(32768, 65535)], "d")


def partitions(c):
    t = topic("parts")
    create_partitioned(http, t, 2)
    c.create_producer(t + "-partition-1").close()
    fails_with(pulsar.TopicNotFound, "producer on partition 2 of 2",
               lambda: c.create_producer(t + "-partition-2"))
    ns = f"public/limits-{uuid.uuid4().hex[:6]}"
    rest(http, "PUT", f"/admin/v2/namespaces/{ns}", {"max_producers_per_topic": 2})
    t = f"persistent://{ns}/limited"
    kept = [c.create_producer(t) for _ in range(2)]
    fails_with(pulsar.ProducerBusy, "third producer with max_producers_per_topic 2",
               lambda: c.create_producer(t))
    kept[0].close()
    c.create_producer(t)


c = client(url)
{"fencing": fencing, "restart": restart, "dlq_init_sub": dlq_init_sub, "last_id": last_id,
 "empty_sub": empty_sub, "key_shared_split": key_shared_split, "sticky_assign": sticky_assign,
 "partitions": partitions}[scenario](c)
c.close()
done(f"cpp_compat {scenario}")
