"""Topic stats, internal stats, broker stats and /metrics under a live load of the official client
(issue 16, acceptance 1 and 2).

The field names checked are those of Pulsar's admin API documentation (TopicStats, PublisherStats,
SubscriptionStats, ConsumerStats, ManagedLedgerInternalStats); a producer publishes at a steady pace
while a consumer receives, so rates, publisher and consumer lists are non-zero.
Usage: observability.py pulsar://host:port http://host:port
"""
import json
import re
import threading
import time
import urllib.request

from common import check, client, topic, urls

TOPIC_FIELDS = [
    "msgRateIn", "msgThroughputIn", "msgRateOut", "msgThroughputOut", "bytesInCounter",
    "msgInCounter", "bytesOutCounter", "msgOutCounter", "averageMsgSize", "storageSize",
    "backlogSize", "offloadedStorageSize", "publishRateLimitedTimes", "publishers",
    "waitingPublishers", "subscriptions", "replication", "deduplicationStatus",
    "nonContiguousDeletedMessagesRanges", "topicEpoch", "ownerBroker",
]
PUBLISHER_FIELDS = [
    "accessMode", "msgRateIn", "msgThroughputIn", "averageMsgSize", "producerId", "producerName",
    "address", "connectedSince", "clientVersion", "metadata",
]
SUBSCRIPTION_FIELDS = [
    "msgRateOut", "msgThroughputOut", "bytesOutCounter", "msgOutCounter", "msgRateRedeliver",
    "msgBacklog", "msgBacklogNoDelayed", "backlogSize", "blockedSubscriptionOnUnackedMsgs",
    "msgDelayed", "unackedMessages", "type", "consumers", "isDurable", "isReplicated",
    "nonContiguousDeletedMessagesRanges",
]
CONSUMER_FIELDS = [
    "msgRateOut", "msgThroughputOut", "bytesOutCounter", "msgOutCounter", "msgRateRedeliver",
    "consumerName", "availablePermits", "unackedMessages", "avgMessagesPerEntry",
    "blockedConsumerOnUnackedMsgs", "address", "connectedSince", "clientVersion", "metadata",
]
INTERNAL_FIELDS = [
    "entriesAddedCounter", "numberOfEntries", "totalSize", "currentLedgerEntries",
    "currentLedgerSize", "lastLedgerCreatedTimestamp", "lastConfirmedEntry", "state", "ledgers",
    "cursors",
]
LEDGER_FIELDS = ["ledgerId", "entries", "size", "offloaded", "underReplicated"]
CURSOR_FIELDS = [
    "markDeletePosition", "readPosition", "messagesConsumedCounter", "individuallyDeletedMessages",
    "totalNonContiguousDeletedMessagesRange", "numberOfEntriesSinceFirstNotAckedMessage", "state",
    "active",
]
LOAD_REPORT_FIELDS = [
    "webServiceUrl", "pulsarServiceUrl", "cpu", "memory", "msgRateIn", "msgRateOut",
    "msgThroughputIn", "msgThroughputOut", "numTopics", "numBundles", "numProducers",
    "numConsumers", "lastUpdate",
]


def get(http, path, raw=False):
    with urllib.request.urlopen(http + path, timeout=20) as r:
        body = r.read().decode()
    return body if raw else json.loads(body)


def has_fields(obj, fields, what):
    missing = [f for f in fields if f not in obj]
    check(not missing, f"{what} lacks Pulsar's fields {missing}: {json.dumps(obj)[:800]}")


def scrape(http):
    """Prometheus text → {(name, frozenset(labels)): value}."""
    out = {}
    for line in get(http, "/metrics", raw=True).splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(series, name, **labels):
    want = set(labels.items())
    vals = [v for (n, l), v in series.items() if n == name and want <= set(l)]
    check(vals, f"no series {name} {labels}")
    return sum(vals)


def main():
    url, http = urls()
    c = client(url)
    t = topic("obs")
    short = t.split("://", 1)[1]
    producer = c.create_producer(t, producer_name="obs-producer", batching_enabled=False,
                                 properties={"app": "observability"})
    consumer = c.subscribe(t, "obs-sub", consumer_name="obs-consumer",
                           consumer_type=__import__("pulsar").ConsumerType.Shared,
                           properties={"team": "strata"})
    lagging = c.subscribe(t, "obs-lagging", consumer_name="lagger")
    lagging.close()
    stop = threading.Event()
    sent = [0]

    def produce():
        while not stop.is_set():
            producer.send(b"x" * 500)
            sent[0] += 1
            time.sleep(0.004)

    def consume():
        while not stop.is_set():
            try:
                m = consumer.receive(timeout_millis=500)
                consumer.acknowledge(m)
            except Exception:  # receive timeout
                pass

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for th in threads:
        th.start()
    try:
        time.sleep(4)
        st = get(http, f"/admin/v2/persistent/{short}/stats")
        has_fields(st, TOPIC_FIELDS, "topic stats")
        check(st["msgRateIn"] > 10, f"msgRateIn under load: {st['msgRateIn']}")
        check(st["msgRateOut"] > 10, f"msgRateOut under load: {st['msgRateOut']}")
        check(st["msgThroughputIn"] > 10 * 500, f"msgThroughputIn: {st['msgThroughputIn']}")
        check(500 <= st["averageMsgSize"] < 1000, f"averageMsgSize: {st['averageMsgSize']}")
        check(st["deduplicationStatus"] in ("Enabled", "Disabled"), st["deduplicationStatus"])
        check(len(st["publishers"]) == 1, f"publishers: {st['publishers']}")
        p = st["publishers"][0]
        has_fields(p, PUBLISHER_FIELDS, "publisher")
        check(p["producerName"] == "obs-producer", p)
        check(p["accessMode"] == "Shared", p)
        check(p["msgRateIn"] > 10, p)
        check(p["metadata"].get("app") == "observability", p)
        check(p["address"] and p["connectedSince"] and p["clientVersion"], p)
        subs = st["subscriptions"]
        check(set(subs) == {"obs-sub", "obs-lagging"}, subs.keys())
        s = subs["obs-sub"]
        has_fields(s, SUBSCRIPTION_FIELDS, "subscription")
        check(s["type"] == "Shared" and s["isDurable"] is True, s)
        check(s["msgRateOut"] > 10, s)
        check(len(s["consumers"]) == 1, s)
        cs = s["consumers"][0]
        has_fields(cs, CONSUMER_FIELDS, "consumer")
        check(cs["consumerName"] == "obs-consumer", cs)
        check(cs["msgRateOut"] > 10 and cs["msgOutCounter"] > 0, cs)
        check(cs["availablePermits"] > 0, cs)
        check(cs["metadata"].get("team") == "strata", cs)
        check(cs["address"] and cs["connectedSince"] and cs["clientVersion"], cs)
        lag = subs["obs-lagging"]
        check(lag["msgBacklog"] > 0 and lag["backlogSize"] > 0, lag)
        check(lag["consumers"] == [], lag)
        check(st["backlogSize"] >= lag["backlogSize"] > 0, (st["backlogSize"], lag))

        internal = get(http, f"/admin/v2/persistent/{short}/internalStats")
        has_fields(internal, INTERNAL_FIELDS, "internal stats")
        check(internal["entriesAddedCounter"] > 0 and internal["numberOfEntries"] > 0, internal)
        check(internal["ledgers"], internal)
        for led in internal["ledgers"]:
            has_fields(led, LEDGER_FIELDS, "internal stats ledger")
        for name in ("obs-sub", "obs-lagging"):
            has_fields(internal["cursors"][name], CURSOR_FIELDS, f"cursor {name}")
        check(internal["cursors"]["obs-sub"]["messagesConsumedCounter"] > 0, internal["cursors"])

        topics = get(http, "/admin/v2/broker-stats/topics")
        found = None
        for bundles in topics.get("public/default", {}).values():
            found = bundles.get("persistent", {}).get(t) or found
        check(found and found["msgRateIn"] > 0, f"broker-stats/topics: {json.dumps(topics)[:500]}")
        lr = get(http, "/admin/v2/broker-stats/load-report")
        has_fields(lr, LOAD_REPORT_FIELDS, "load report")
        check(lr["numTopics"] >= 1 and lr["msgRateIn"] > 0 and lr["memory"]["usage"] > 0, lr)

        m = scrape(http)
        ns = {"namespace": "public/default"}
        check(value(m, "pulsar_rate_in", **ns) > 10, "pulsar_rate_in under load")
        check(value(m, "pulsar_rate_out", **ns) > 10, "pulsar_rate_out under load")
        check(value(m, "pulsar_throughput_in", **ns) > 5000, "pulsar_throughput_in")
        check(value(m, "pulsar_in_messages_total", **ns) > 0, "pulsar_in_messages_total")
        check(value(m, "pulsar_producers_count", **ns) >= 1, "pulsar_producers_count")
        check(value(m, "pulsar_consumers_count", **ns) >= 1, "pulsar_consumers_count")
        check(value(m, "pulsar_subscriptions_count", **ns) >= 2, "pulsar_subscriptions_count")
        check(value(m, "pulsar_storage_size", **ns) > 0, "pulsar_storage_size")
        check(value(m, "pulsar_msg_backlog", **ns) > 0, "pulsar_msg_backlog")
        check(value(m, "pulsar_subscription_back_log", **ns) > 0, "pulsar_subscription_back_log")
        writes = value(m, "pulsar_storage_write_latency_count", **ns)
        check(writes > 0, "pulsar_storage_write_latency_count")
        buckets = sum(value(m, f"pulsar_storage_write_latency_{b}", **ns) for b in
                      ["le_0_5", "le_1", "le_5", "le_10", "le_20", "le_50", "le_100", "le_200",
                       "le_1000", "overflow"])
        check(buckets == writes, f"write latency buckets {buckets} != count {writes}")
        check(value(m, "pulsar_entry_size_le_1_kb", **ns) > 0, "500-byte entries in le_1_kb")
        check(value(m, "pulsar_entry_size_le_128", **ns) == 0, "no entry of 128 bytes or less")
        for name in ["pulsar_publish_rate_limit_times", "pulsar_dispatch_rate_limit_times",
                     "pulsar_storage_backlog_size", "pulsar_storage_offloaded_size",
                     "pulsar_subscription_msg_rate_out", "pulsar_subscription_unacked_messages",
                     "pulsar_subscription_delayed", "pulsar_subscription_msg_rate_redeliver"]:
            value(m, name, **ns)
        # The standalone's embedded bookie and the process.
        check(value(m, "bookie_add_entry_total") > 0, "bookie adds")
        value(m, "bookie_journal_sync_latency_seconds_count")
        value(m, "bookie_write_cache_hits_total")
        value(m, "bookie_write_cache_misses_total")
        value(m, "bookie_ledger_dir_free_bytes")
        value(m, "bookie_journal_dir_free_bytes")
        value(m, "bookie_journal_queue_size")
        check(value(m, "bookie_read_entry_latency_seconds_count") >= 0, "bookie read latency")
        # BookKeeper's names of the same series.
        check(value(m, "bookkeeper_server_ADD_ENTRY_REQUEST_count") > 0, "BookKeeper add latency")
        value(m, "bookie_journal_JOURNAL_SYNC_count")
        value(m, "bookie_journal_JOURNAL_QUEUE_SIZE")
        value(m, "bookie_ledgers_count")
        check(value(m, "process_resident_memory_bytes") > 0, "process RSS")
        check(value(m, "process_cpu_seconds_total") > 0, "process CPU")
        check(not any(("topic", t) in l for (_, l) in m), "topic-level series while off")
    finally:
        stop.set()
        for th in threads:
            th.join()
    c.close()
    print(f"OK sent={sent[0]}")


if __name__ == "__main__":
    main()
