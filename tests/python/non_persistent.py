"""Non-persistent topics with the official client. Usage: non_persistent.py PULSAR HTTP SCENARIO

- fanout: receipts come at once with Pulsar's non-persistent id; every subscription connected
  at publish time gets every message (Exclusive, Failover, Shared split over two consumers,
  Key_Shared); a message published before a subscription existed never reaches it; acks are
  accepted; subscriptions go away with their last consumer.
- drops: under load with a consumer that never reads and with no consumer at all, messages are
  dropped, not queued: per subscription delivered + dropped == published, the drop counters and
  rates show in the topic stats (topic, publisher, subscription).
- listing: non-persistent topics (and partitions of a partitioned one) are listed by
  /admin/v2/non-persistent/{t}/{ns} and namespaces/.../topics?mode=..., never among persistent
  ones; pattern consumers in each RegexSubscriptionMode see the right topics.
- partitioned: a partitioned non-persistent topic created over REST: produce/consume across
  partitions, partitioned-stats, internalStats, delete.
"""
import re
import time
import urllib.error
import uuid

import pulsar
from common import *

url, http = urls()
scenario = sys.argv[3]
c = client(url)


def np_topic(prefix):
    return f"non-persistent://public/default/{prefix}-{uuid.uuid4().hex[:8]}"


def admin_path(t):
    return "/admin/v2/" + t.replace("://", "/")


def stats(t):
    return rest(http, "GET", admin_path(t) + "/stats")


def drain(consumer, timeout_ms=1000):
    got = []
    while True:
        try:
            m = consumer.receive(timeout_millis=timeout_ms)
        except pulsar.Timeout:
            return got
        consumer.acknowledge(m)
        got.append(m)


def fanout():
    t = np_topic("np-fanout")
    p = c.create_producer(t, batching_enabled=False)
    # Before any subscription: dropped, never delivered later.
    for i in range(5):
        p.send(f"early-{i}".encode())
    ex = c.subscribe(t, "ex", consumer_type=pulsar.ConsumerType.Exclusive)
    fo = c.subscribe(t, "fo", consumer_type=pulsar.ConsumerType.Failover)
    sh1 = c.subscribe(t, "sh", consumer_type=pulsar.ConsumerType.Shared, consumer_name="sh1")
    sh2 = c.subscribe(t, "sh", consumer_type=pulsar.ConsumerType.Shared, consumer_name="sh2")
    ks = c.subscribe(t, "ks", consumer_type=pulsar.ConsumerType.KeyShared)
    time.sleep(0.5)  # the consumers' first FLOW
    n = 100
    worst = 0.0
    for i in range(n):
        t0 = time.time()
        mid = p.send(f"m-{i}".encode(), partition_key=f"k{i % 7}")
        worst = max(worst, time.time() - t0)
        check(mid.ledger_id() == 0 and mid.entry_id() == 0,
              f"non-persistent receipt id is 0:0, got {mid}")
    print(f"slowest synchronous send: {worst * 1000:.1f} ms")
    check(worst < 1.0, f"receipts are immediate (slowest {worst:.3f} s)")
    for name, cons in (("ex", ex), ("fo", fo), ("ks", ks)):
        got = [m.data() for m in drain(cons)]
        check(got == [f"m-{i}".encode() for i in range(n)],
              f"{name}: every message once, in order ({len(got)} received)")
    a, b = drain(sh1), drain(sh2)
    both = sorted(m.data() for m in a + b)
    check(both == sorted(f"m-{i}".encode() for i in range(n)),
          f"shared: every message once over two consumers ({len(a)}+{len(b)})")
    check(len(a) > 0 and len(b) > 0, f"shared: both consumers served ({len(a)}/{len(b)})")
    # Batches: one entry of several messages, each delivered.
    pb = c.create_producer(t, batching_enabled=True, batching_max_messages=10,
                           batching_max_publish_delay_ms=50)
    bodies = [f"b-{i}".encode() for i in range(50)]
    send_all(pb, bodies)
    got = [m.data() for m in drain(ex)]
    check(got == bodies, f"batched messages all delivered in order ({len(got)})")
    for cons in (fo, sh1, sh2, ks):
        drain(cons, 300)
    pb.close()
    st = stats(t)
    check(set(st["subscriptions"]) == {"ex", "fo", "sh", "ks"}, f"subscriptions {st['subscriptions'].keys()}")
    check(st["msgInCounter"] == n + 5 + 50, f"msgInCounter {st['msgInCounter']}")
    pub = st["publishers"][0]
    check(pub["msgDropCount"] == 5, f"publisher drops: the 5 early messages, got {pub['msgDropCount']}")
    check(st["subscriptions"]["ex"]["msgDropCount"] == 0, "no drop on a keeping-up subscription")
    check("msgDropRate" in st and "msgDropRate" in st["subscriptions"]["sh"], "msgDropRate fields")
    check("nonContiguousDeletedMessagesRanges" not in st, "no cursor fields")
    for cons in (ex, fo, sh1, sh2, ks):
        cons.close()
    time.sleep(0.3)
    subs = rest(http, "GET", admin_path(t) + "/subscriptions")
    check(subs == [], f"subscriptions go away with their last consumer: {subs}")
    # A new subscription sees only what is published after it joined.
    late = c.subscribe(t, "late")
    time.sleep(0.3)
    p.send(b"after")
    got = drain(late)
    check([m.data() for m in got] == [b"after"], f"late subscriber: {[m.data() for m in got]}")
    internal = rest(http, "GET", admin_path(t) + "/internalStats")
    check(internal["ledgers"] == [] and n + 11 <= internal["entriesAddedCounter"] <= n + 56,
          f"internalStats: {internal}")


def drops():
    t = np_topic("np-drops")
    # A consumer that never reads: it holds at most its receiver queue.
    stuck = c.subscribe(t, "stuck", receiver_queue_size=10)
    fast = c.subscribe(t, "fast", receiver_queue_size=1000)
    fast_got = []
    lock = threading.Lock()
    p = c.create_producer(t, batching_enabled=False, max_pending_messages=5000,
                          block_if_queue_full=True)
    time.sleep(0.5)
    n = 20000
    t0 = time.time()
    errors = []
    for i in range(n):
        p.send_async(f"load-{i}".encode(), lambda r, _m: errors.append(r) if r != pulsar.Result.Ok else None)
        if i % 1000 == 999:
            # Keep the fast consumer reading while the load goes on.
            fast_got.extend(drain(fast, 1))
    p.flush()
    took = time.time() - t0
    print(f"published {n} messages in {took:.2f} s ({n / took:.0f} msg/s)")
    check(not errors, f"send errors: {errors[:3]}")
    fast_got.extend(drain(fast, 1000))
    time.sleep(2.5)  # a rate sample
    st = stats(t)
    check(st["msgInCounter"] == n, f"msgInCounter {st['msgInCounter']}")
    for name in ("stuck", "fast"):
        s = st["subscriptions"][name]
        check(s["msgOutCounter"] + s["msgDropCount"] == n,
              f"{name}: delivered {s['msgOutCounter']} + dropped {s['msgDropCount']} == {n}")
    s = st["subscriptions"]["stuck"]
    print(f"stuck: delivered {s['msgOutCounter']}, dropped {s['msgDropCount']}; "
          f"fast: delivered {st['subscriptions']['fast']['msgOutCounter']}, "
          f"dropped {st['subscriptions']['fast']['msgDropCount']}, received {len(fast_got)}")
    check(s["msgOutCounter"] <= 20, f"the stuck consumer got only its queue: {s['msgOutCounter']}")
    check(s["msgDropCount"] >= n - 20, f"the rest was dropped: {s['msgDropCount']}")
    check(len(fast_got) == st["subscriptions"]["fast"]["msgOutCounter"],
          f"the fast consumer received what was sent to it ({len(fast_got)})")
    check(st["msgDropCount"] >= s["msgDropCount"], "topic drop count sums subscriptions")
    before = st["publishers"][0]["msgDropCount"]
    stuck.close()
    fast.close()
    time.sleep(0.3)
    # Nobody subscribed: every message dropped, on the publisher's counter.
    for i in range(300):
        p.send_async(b"x", None)
    p.flush()
    time.sleep(2.5)
    st = stats(t)
    pub = st["publishers"][0]
    check(pub["msgDropCount"] - before == 300,
          f"publisher drops with no consumer: {pub['msgDropCount']} - {before}")
    check(pub["msgDropRate"] > 0 and st["msgDropRate"] > 0,
          f"drop rates {pub['msgDropRate']} / {st['msgDropRate']}")


def listing():
    base = f"np-list-{uuid.uuid4().hex[:6]}"
    np1 = f"non-persistent://public/default/{base}-a"
    per = f"persistent://public/default/{base}-b"
    npp = f"non-persistent://public/default/{base}-p"
    rest(http, "PUT", admin_path(npp) + "/partitions", 2)
    p1 = c.create_producer(np1)
    p2 = c.create_producer(per)
    nps = rest(http, "GET", "/admin/v2/non-persistent/public/default")
    check(np1 in nps and f"{npp}-partition-0" in nps and f"{npp}-partition-1" in nps,
          f"non-persistent list: {nps}")
    check(per not in nps, "no persistent topic among non-persistent ones")
    ps = rest(http, "GET", "/admin/v2/persistent/public/default")
    check(per in ps and np1 not in ps, f"persistent list: {ps}")
    parts = rest(http, "GET", "/admin/v2/non-persistent/public/default/partitioned")
    check(parts == [npp] or npp in parts, f"partitioned non-persistent list: {parts}")
    q = "/admin/v2/namespaces/public/default/topics"
    all_ = rest(http, "GET", q + "?mode=ALL")
    check(np1 in all_ and per in all_, "mode=ALL lists both")
    only = rest(http, "GET", q + "?mode=NON_PERSISTENT")
    check(np1 in only and per not in only, "mode=NON_PERSISTENT")
    dflt = rest(http, "GET", q)
    check(per in dflt and np1 not in dflt, "default mode is PERSISTENT")
    # The binary protocol's listing, through pattern consumers of each mode.
    pat = re.compile(f"public/default/{base}-.*")
    modes = {
        "all": pulsar.RegexSubscriptionMode.AllTopics,
        "per": pulsar.RegexSubscriptionMode.PersistentOnly,
        "np": pulsar.RegexSubscriptionMode.NonPersistentOnly,
    }
    cons = {k: c.subscribe(pat, f"re-{k}", regex_subscription_mode=m) for k, m in modes.items()}
    time.sleep(0.5)
    p1.send(b"np")
    p2.send(b"per")
    seen = {k: sorted(m.topic_name() for m in drain(v)) for k, v in cons.items()}
    check(seen["all"] == sorted([np1, per]), f"AllTopics: {seen['all']}")
    check(seen["per"] == [per], f"PersistentOnly: {seen['per']}")
    check(seen["np"] == [np1], f"NonPersistentOnly: {seen['np']}")
    # A namespace with a non-persistent topic in use cannot be deleted; once idle, it can.
    ns = f"public/npdel-{uuid.uuid4().hex[:6]}"
    rest(http, "PUT", f"/admin/v2/namespaces/{ns}")
    pd = c.create_producer(f"non-persistent://{ns}/t")
    try:
        rest(http, "DELETE", f"/admin/v2/namespaces/{ns}")
        raise AssertionError("namespace with a live non-persistent topic deleted")
    except urllib.error.HTTPError as e:
        check(e.code == 409, f"delete busy namespace: HTTP {e.code}")
    pd.close()
    rest(http, "DELETE", f"/admin/v2/namespaces/{ns}")


def partitioned():
    t = np_topic("np-part")
    rest(http, "PUT", admin_path(t) + "/partitions", 3)
    meta = rest(http, "GET", admin_path(t) + "/partitions")
    check(meta["partitions"] == 3, f"partitions {meta}")
    cons = c.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
    p = c.create_producer(t, batching_enabled=False,
                          message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution)
    time.sleep(0.5)
    n = 60
    for i in range(n):
        p.send(f"p-{i}".encode())
    got = drain(cons)
    check(sorted(m.data() for m in got) == sorted(f"p-{i}".encode() for i in range(n)),
          f"every message once across partitions ({len(got)})")
    check(len({m.topic_name() for m in got}) == 3, "messages came from the three partitions")
    ps = rest(http, "GET", admin_path(t) + "/partitioned-stats?perPartition=true")
    check(ps["msgInCounter"] == n and ps["metadata"]["partitions"] == 3, f"partitioned-stats {ps}")
    check(len(ps["partitions"]) == 3, "per-partition stats")
    internal = rest(http, "GET", admin_path(t) + "-partition-0/internalStats")
    check(internal["ledgers"] == [], f"partition internalStats {internal}")
    cons.close()
    p.close()
    rest(http, "DELETE", admin_path(t) + "/partitions")
    try:
        rest(http, "GET", admin_path(t) + "/partitioned-stats")
        raise AssertionError("partitioned topic still there after delete")
    except urllib.error.HTTPError as e:
        check(e.code == 404, f"deleted: HTTP {e.code}")


import threading  # noqa: E402  (used by drops)

{"fanout": fanout, "drops": drops, "listing": listing, "partitioned": partitioned}[scenario]()
c.close()
done(f"non_persistent {scenario}")
