"""Namespace policies enforced on live topics (tests/it/policies.rs), official client.

Each policy is set through the admin REST API on a namespace whose topic is already live, and
its effect must be visible within seconds: max producers/consumers (ProducerBusy/ConsumerBusy),
message TTL (backlog expires), backlog quota producer_exception (producers and sends refused),
producer_request_hold (sends held until under quota), message_age eviction, retention (consumed
ledgers trimmed or kept), publish and dispatch rates (throttled, nothing lost)
and consumer_backlog_eviction (backlog evicted).
"""
import functools
import time
import uuid

import pulsar

import common
from common import check, client, urls

url, http = urls()
c = client(url)


rest = functools.partial(common.rest, http)


def namespace():
    ns = f"public/pol-{uuid.uuid4().hex[:6]}"
    rest("PUT", f"/admin/v2/namespaces/{ns}")
    return ns


def live_topic(name, bodies, **kw):
    """A fresh namespace with topic `name` and subscription "s", and an unbatched producer that
    has sent `bodies`: (namespace, topic, producer)."""
    ns = namespace()
    t = f"persistent://{ns}/{name}"
    c.subscribe(t, "s").close()
    p = c.create_producer(t, batching_enabled=False, **kw)
    for b in bodies:
        p.send(b)
    return ns, t, p


def backlog_quota(ns, kind, limit_size, limit_time, policy):
    rest(
        "POST",
        f"/admin/v2/namespaces/{ns}/backlogQuota?backlogQuotaType={kind}",
        {"limitSize": limit_size, "limitTime": limit_time, "policy": policy},
    )


def skip_all(topic):
    rest("POST", topic.replace("persistent://", "/admin/v2/persistent/") + "/subscription/s/skip_all")


def backlog(topic, sub):
    path = topic.replace("persistent://", "/admin/v2/persistent/")
    return rest("GET", f"{path}/stats")["subscriptions"][sub]["msgBacklog"]


def eventually(what, f, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f():
            return time.time()
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def refused(f, name):
    try:
        f()
    except Exception as e:  # noqa: BLE001
        check(name in type(e).__name__ or name in str(e), f"expected {name}, got {type(e).__name__}: {e}")
        return
    raise AssertionError(f"expected {name}, but it succeeded")


# max producers / consumers per topic, set while the topic is live
ns = namespace()
t = f"persistent://{ns}/limits"
p1 = c.create_producer(t)
rest("POST", f"/admin/v2/namespaces/{ns}/maxProducersPerTopic", 1)
rest("POST", f"/admin/v2/namespaces/{ns}/maxConsumersPerTopic", 1)
refused(lambda: c.create_producer(t), "ProducerBusy")
c1 = c.subscribe(t, "a", consumer_type=pulsar.ConsumerType.Shared)
refused(lambda: c.subscribe(t, "b", consumer_type=pulsar.ConsumerType.Shared), "ConsumerBusy")
p1.close()
c1.close()
p2 = c.create_producer(t)  # room again
p2.close()
print("max producers/consumers: ok")

# message TTL on a live subscription
ns, t, p = live_topic("ttl", [f"m{i}".encode() for i in range(5)])
check(backlog(t, "s") == 5, "backlog before TTL")
set_at = time.time()
rest("POST", f"/admin/v2/namespaces/{ns}/messageTTL", 2)
done = eventually("TTL expires the backlog", lambda: backlog(t, "s") == 0)
print(f"ttl: backlog expired {done - set_at:.1f}s after setting a 2s TTL")
p.close()

# backlog quota: producer_exception
ns, t, p = live_topic("quota", [b"x" * 100] * 5, send_timeout_millis=5000)
backlog_quota(ns, "destination_storage", 200, -1, "producer_exception")


def producer_refused_on(topic):
    def f():
        try:
            c.create_producer(topic, send_timeout_millis=2000).close()
            return False
        except Exception as e:  # noqa: BLE001
            check("Quota" in type(e).__name__ or "quota" in str(e).lower() or "Timeout" in type(e).__name__, f"wrong error {type(e).__name__}: {e}")
            return True
    return f


def producer_refused():
    return producer_refused_on(t)()


eventually("new producers refused over quota", producer_refused)
refused(lambda: p.send(b"y"), "Quota")
p.close()
# Drain the backlog: producers are admitted again.
c.subscribe(t, "s")
skip_all(t)
eventually("producers admitted under quota", lambda: not producer_refused())
print("backlog quota producer_exception: ok")

# backlog quota: producer_request_hold — sends are held (not failed) while over the quota and
# go through once the backlog is consumed
ns, t, p = live_topic("hold", [b"h" * 100] * 5, send_timeout_millis=60000)
backlog_quota(ns, "destination_storage", 200, -1, "producer_request_hold")
eventually("new producers refused over quota (hold)", producer_refused_on(t))
held = []
p.send_async(b"held", lambda res, mid: held.append(str(res)))
time.sleep(3)
check(held == [], f"a send went through while the quota was exceeded: {held}")
skip_all(t)
eventually("the held send completes once under quota", lambda: held != [], timeout=30)
check(held in (["Ok"], ["Result.Ok"]), f"held send result {held}")
p.close()
print("backlog quota producer_request_hold: ok (send held, then delivered)")

# backlog quota by message age (backlogQuotaType=message_age) with consumer_backlog_eviction
ns, t, p = live_topic("age", [b"old"] * 4)
time.sleep(3)
backlog_quota(ns, "message_age", -1, 2, "consumer_backlog_eviction")
eventually("messages older than the age limit are evicted", lambda: backlog(t, "s") == 0)
p.send(b"fresh")
check(backlog(t, "s") == 1, "a fresh message stays")
p.close()
print("backlog quota message_age eviction: ok")

# backlog quota: consumer_backlog_eviction
ns, t, p = live_topic("evict", [b"z" * 100] * 10)
check(backlog(t, "s") == 10, "backlog before eviction")
backlog_quota(ns, "destination_storage", 300, -1, "consumer_backlog_eviction")
eventually("eviction trims the backlog under the quota", lambda: backlog(t, "s") <= 3)
p.send(b"still-works")
p.close()
print("backlog quota consumer_backlog_eviction: ok")


# retention: fully consumed ledgers are deleted past the retention limits (time 0 / size 0),
# kept with infinite retention (-1 / -1)
def ledgers_after_consumed_rollover(retention):
    ns_ = namespace()
    rest("POST", f"/admin/v2/namespaces/{ns_}/retention", retention)
    topic = f"persistent://{ns_}/ret"
    admin = topic.replace("persistent://", "/admin/v2/persistent/")
    sub = c.subscribe(topic, "s")
    p = c.create_producer(topic, batching_enabled=False)
    for round_ in range(2):
        for i in range(5):
            p.send(f"ret{round_}-{i}".encode())
        for i in range(5):
            sub.acknowledge(sub.receive(timeout_millis=10_000))
        if round_ == 0:
            rest("PUT", f"{admin}/unload")  # closes the ledger; clients reconnect to a new one
    time.sleep(3)  # cursor flush + a policy pass
    ledgers = rest("GET", f"{admin}/internalStats")["ledgers"]
    p.close()
    sub.close()
    return len(ledgers)


kept = ledgers_after_consumed_rollover({"retentionTimeInMinutes": -1, "retentionSizeInMB": -1})
trimmed = ledgers_after_consumed_rollover({"retentionTimeInMinutes": 0, "retentionSizeInMB": 0})
print(f"retention: {kept} ledgers kept with infinite retention, {trimmed} with none")
check(kept >= 2, f"infinite retention keeps consumed ledgers ({kept})")
check(trimmed < kept, f"zero retention trims consumed ledgers ({trimmed} vs {kept})")


# publish rate: throttled, not dropped (compared with an unlimited namespace in the same run)
def publish_all(topic, n):
    sub = c.subscribe(topic, "r")
    p = c.create_producer(topic, batching_enabled=False, max_pending_messages=1000)
    started = time.time()
    for i in range(n):
        p.send_async(f"r{i}".encode(), lambda res, mid: None)
    p.flush()
    elapsed = time.time() - started
    got = set()
    for _ in range(n):
        m = sub.receive(timeout_millis=10_000)
        got.add(m.data())
        sub.acknowledge(m)
    check(len(got) == n, f"all {n} messages arrive ({len(got)})")
    p.close()
    sub.close()
    return elapsed


N = 60
free = publish_all(f"persistent://{namespace()}/free", N)
ns = namespace()
t = f"persistent://{ns}/rate"
c.create_producer(t).close()  # the topic is live before the policy is set
rest(
    "POST",
    f"/admin/v2/namespaces/{ns}/publishRate",
    {"publishThrottlingRateInMsg": 20, "publishThrottlingRateInByte": -1},
)
time.sleep(2)  # picked up by the next policy refresh
limited = publish_all(t, N)
print(f"publish rate 20 msg/s: {N} messages in {limited:.2f}s vs {free:.2f}s unlimited")
check(limited > 4 * free and limited > 1.5, "the publish rate throttles the producer")


# dispatch rate: consumers are throttled, nothing is lost
def consume_all(ns_, n):
    topic = f"persistent://{ns_}/d-{uuid.uuid4().hex[:6]}"
    c.subscribe(topic, "d").close()  # durable: the subscription stays on the live topic
    p = c.create_producer(topic, batching_enabled=False)
    for i in range(n):
        p.send_async(f"d{i}".encode(), lambda res, mid: None)
    p.flush()
    p.close()
    time.sleep(1.5)  # the policy task applies the namespace's rate to the subscription
    sub = c.subscribe(topic, "d")
    started = time.time()
    got = set()
    for _ in range(n):
        m = sub.receive(timeout_millis=15_000)
        got.add(m.data())
        sub.acknowledge(m)
    elapsed = time.time() - started
    check(len(got) == n, f"all {n} messages delivered ({len(got)})")
    sub.close()
    return elapsed


free = consume_all(namespace(), N)
ns = namespace()
rest(
    "POST",
    f"/admin/v2/namespaces/{ns}/dispatchRate",
    {"dispatchThrottlingRateInMsg": 20, "dispatchThrottlingRateInByte": -1, "ratePeriodInSecond": 1},
)
limited = consume_all(ns, N)
print(f"dispatch rate 20 msg/s: {N} messages in {limited:.2f}s vs {free:.2f}s unlimited")
check(limited > 4 * free and limited > 1.0, "the dispatch rate throttles delivery")


# the topic dispatch rate bounds all subscriptions together; the subscription dispatch rate
# bounds each one
def consume_two_subs(ns_, n):
    import threading

    topic = f"persistent://{ns_}/two-{uuid.uuid4().hex[:6]}"
    for s_ in ("a", "b"):
        c.subscribe(topic, s_).close()
    p = c.create_producer(topic, batching_enabled=False)
    for i in range(n):
        p.send_async(f"t{i}".encode(), lambda res, mid: None)
    p.flush()
    p.close()
    time.sleep(1.5)
    subs = [c.subscribe(topic, s_) for s_ in ("a", "b")]
    counts = [0, 0]

    def drain(i):
        for _ in range(n):
            m = subs[i].receive(timeout_millis=20_000)
            subs[i].acknowledge(m)
            counts[i] += 1

    started = time.time()
    threads = [threading.Thread(target=drain, args=(i,)) for i in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.time() - started
    check(counts == [n, n], f"both subscriptions get everything ({counts})")
    for x in subs:
        x.close()
    return elapsed


M = 30
rate = {"dispatchThrottlingRateInMsg": 20, "dispatchThrottlingRateInByte": -1, "ratePeriodInSecond": 1}
ns_topic = namespace()
rest("POST", f"/admin/v2/namespaces/{ns_topic}/dispatchRate", rate)
ns_sub = namespace()
rest("POST", f"/admin/v2/namespaces/{ns_sub}/subscriptionDispatchRate", rate)
shared = consume_two_subs(ns_topic, M)
per_sub = consume_two_subs(ns_sub, M)
print(f"two subscriptions x {M} messages at 20 msg/s: topic rate {shared:.2f}s, subscription rate {per_sub:.2f}s")
check(shared > 1.3 * per_sub, "the topic dispatch rate is shared by its subscriptions")
c.close()
print("OK")
