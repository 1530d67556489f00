//! Acceptance (issue 12, point 3): bookies on object storage, one loses its disk.
//!
//! etcd, 3 `strata bookie` processes uploading sealed segments to the in-process S3 server
//! (s3s-fs), one broker with E=2/Qw=2/Qa=2 (so that a replacement exists for every segment and
//! auto-recovery could re-replicate), auto-recovery grace 3 s. The official Python client produces
//! to two topics; the bookie named by the most open ledgers is SIGKILLed, its data directory
//! deleted, and it stays down well past the grace period; then it starts again, empty, under the
//! same id and storage URL. Checked:
//! - no acknowledged message lost (read back from earliest after a broker restart, then again
//!   with the other bookie of the victim's old segments SIGKILLed, so those entries come from the
//!   returned bookie alone: from its uploaded segments in the store plus what auto-recovery
//!   copied back);
//! - no re-replication: every ensemble segment that named the victim at the kill still names it,
//!   auto-recovery re-replicated no segment (metrics and logs), and what it copied back to the
//!   victim is only the tail that was in its lost journal (entries after the highest it serves
//!   from the store) — its disk record is then marked checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strata_objstore::test_server::S3TestServer;

use super::sandbox::{BrokerOptions, Sandbox, http_get};
use super::workload::{self, ProduceSpec, Run};

/// (ledger, first entry) → bookies, of every ensemble segment.
async fn segments(sb: &Sandbox) -> BTreeMap<(u64, u64), Vec<String>> {
    let mut m = BTreeMap::new();
    for l in sb.ledgers().await {
        for s in &l.ensembles {
            let b = s.bookies.iter().map(|b| b.0.clone()).collect();
            m.insert((l.ledger_id.0, s.first_entry.0), b);
        }
    }
    m
}

/// The bookie index named by the most open ledgers' current ensembles.
async fn busiest_bookie(sb: &Sandbox) -> usize {
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for l in sb.ledgers().await {
        if l.state != strata_meta::model::LedgerState::Closed {
            for b in l
                .ensembles
                .last()
                .map(|s| s.bookies.clone())
                .unwrap_or_default()
            {
                *uses.entry(b.0).or_default() += 1;
            }
        }
    }
    let best = uses.iter().max_by_key(|(_, n)| **n).map(|(b, _)| b.clone());
    best.and_then(|b| sb.bookies.iter().position(|x| x.addr == b))
        .unwrap_or(0)
}

/// Value of the counter `name` (without `_total`) on broker `i`'s `/metrics` (0 if absent).
fn broker_counter(sb: &Sandbox, i: usize, name: &str) -> f64 {
    let Some((_, text)) = http_get(&sb.brokers[i].http_addr(), "/metrics") else {
        return f64::NAN;
    };
    let key = format!("{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sum of `field=N` over the log lines containing `needle`.
fn sum_field(log: &str, needle: &str, field: &str) -> (usize, u64) {
    let key = format!("{field}=");
    let mut n = 0;
    let mut sum = 0;
    for l in log.lines().filter(|l| l.contains(needle)) {
        n += 1;
        if let Some(at) = l.find(&key) {
            let v: String = l[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            sum += v.parse::<u64>().unwrap_or(0);
        }
    }
    (n, sum)
}

/// The victim's disk record (`<root>/bookie-disks/<id>`) as JSON text.
async fn disk_record(sb: &Sandbox, id: &str) -> Option<String> {
    let meta = sb.meta().await;
    let key = strata_bookie::disk::record_key(meta.paths(), id);
    let v = meta.store().get(&key).await.unwrap()?;
    Some(String::from_utf8_lossy(&v.value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookie_losing_its_disk_on_object_storage_loses_nothing_and_is_not_re_replicated() {
    let Some(py) = workload::python() else {
        return;
    };
    let s3_dir = tempfile::tempdir().unwrap();
    let srv = S3TestServer::start(s3_dir.path(), "bkt").await.unwrap();
    let env: Vec<(String, String)> = S3TestServer::env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bookie_args: Vec<String> = [
        "--storage-url",
        "s3://bkt/cluster",
        "--storage-endpoint",
        &srv.endpoint,
        "--segment-cache-bytes",
        "8000000",
        "--segment-max-age",
        "300ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut sb = Sandbox::start_with(3, bookie_args, env).await;
    sb.init_cluster();
    let opts = BrokerOptions {
        ensemble_size: 2,
        write_quorum: 2,
        ack_quorum: 2,
        autorecovery_grace_secs: 3,
        ..BrokerOptions::default()
    };
    sb.start_brokers(1, opts).await;
    let run = Run::new(py, sb.service_url());
    let topics = vec![workload::topic("osd-a"), workload::topic("osd-b")];
    let stop = run.path("stop");
    let spec = ProduceSpec {
        size: 1024,
        stop_file: Some(stop.clone()),
        ..ProduceSpec::steady(&topics, 1500.0, 150)
    };
    let mut producer = run.produce("producer", &spec);
    producer
        .wait_count("ack", 8_000, Duration::from_secs(90))
        .await;
    let victim = busiest_bookie(&sb).await;
    let victim_id = sb.bookies[victim].addr.clone();
    sb.kill_bookie(victim);
    let at_kill = segments(&sb).await;
    let acks_at_kill = producer.count("ack");
    std::fs::remove_dir_all(sb.bookie_data_dir(victim)).unwrap();
    let down = Duration::from_secs(15);
    eprintln!(
        "killed bookie {victim} ({victim_id}) after {acks_at_kill} acks, data directory deleted; \
         down for {down:?} (auto-recovery grace 3 s)"
    );
    tokio::time::sleep(down).await;
    let replaced_while_down = broker_counter(&sb, 0, "bookkeeper_autorecovery_segments");
    sb.start_bookie(victim).await;
    let vlog = sb.bookies[victim].log();
    let (_, rebuilt_entries) = sum_field(
        &vlog,
        "index of an empty bookie rebuilt from object storage",
        "segments",
    );
    // keep producing a while with the returned bookie, then stop
    let more = producer.count("ack") + 3_000;
    producer
        .wait_count("ack", more, Duration::from_secs(60))
        .await;
    workload::touch(&stop);
    producer.wait(Duration::from_secs(60)).await;
    let produced = producer.records();
    // auto-recovery passes every 5 s: let a few run with the bookie back
    tokio::time::sleep(Duration::from_secs(12)).await;
    let m = |n: &str| broker_counter(&sb, 0, n);
    let (re_segments, re_entries, refill_entries, copied_bytes, failures) = (
        m("bookkeeper_autorecovery_segments"),
        m("bookkeeper_autorecovery_entries"),
        m("bookkeeper_autorecovery_refill_entries"),
        m("bookkeeper_autorecovery_bytes"),
        m("bookkeeper_autorecovery_failures"),
    );
    let blog = sb.brokers[0].log();
    let (refill_lines, refill_logged) = sum_field(
        &blog,
        "entries lost with the bookie's disk copied back",
        "entries",
    );
    let changed: Vec<_> = at_kill
        .iter()
        .filter(|(_, b)| b.contains(&victim_id))
        .map(|(k, b)| (*k, b.clone()))
        .collect();
    let now = segments(&sb).await;
    let victim_segments = changed.len();
    let swapped: Vec<_> = changed
        .iter()
        .filter(|(k, _)| now.get(k).is_some_and(|b| !b.contains(&victim_id)))
        .collect();
    eprintln!(
        "RESULT: object-storage bookie disk loss: {} acknowledged; victim {victim_id} down {:?} \
         (grace 3 s); segments naming it at the kill: {victim_segments}, swapped out since: {}; \
         auto-recovery while it was down: {replaced_while_down} segments re-replicated; after its \
         return: re-replicated segments {re_segments}, entries {re_entries}, entries copied back \
         to it {refill_entries} ({refill_lines} segments logged, {refill_logged} entries), bytes \
         copied {copied_bytes}, failures {failures}; entries it serves from its uploaded \
         segments after the empty-disk restart: {rebuilt_entries}",
        workload::acks(&produced).len(),
        down,
        swapped.len(),
    );

    // read back (broker restart: ledgers closed, no entry cache)
    let read = run
        .read_back(&mut sb, "reader", &topics, Duration::from_secs(120))
        .await;
    let a = workload::analyse(&produced, &read);
    eprintln!("RESULT: read-back after the disk loss: {}", a.report);
    a.assert_safe("object-storage bookie disk loss, read back");

    // the victim's record is checked once every ledger from before its return is closed
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rec = disk_record(&sb, &victim_id).await;
    while !rec
        .as_deref()
        .is_some_and(|r| r.contains("\"checked\":true"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rec = disk_record(&sb, &victim_id).await;
    }
    eprintln!("RESULT: victim's disk record: {rec:?}");

    // entries of the victim's old segments now only on the victim
    let partner = changed
        .iter()
        .flat_map(|(_, b)| b.iter().filter(|x| **x != victim_id).cloned())
        .fold(BTreeMap::<String, usize>::new(), |mut m, b| {
            *m.entry(b).or_default() += 1;
            m
        })
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(b, _)| b)
        .expect("a partner bookie");
    let pi = sb.bookies.iter().position(|b| b.addr == partner).unwrap();
    sb.kill_bookie(pi);
    let read2 = run
        .read_back(&mut sb, "reader-2", &topics, Duration::from_secs(120))
        .await;
    let a2 = workload::analyse(&produced, &read2);
    eprintln!(
        "RESULT: partner {partner} SIGKILLed too (its share of the victim's old segments now only \
         on the returned bookie): read-back {}",
        a2.report
    );
    a2.assert_safe("read back from the returned bookie");

    let blog = sb.brokers[0].log();
    let re_replicated: Vec<&str> = blog
        .lines()
        .filter(|l| l.contains("segment re-replicated") && l.contains(&victim_id))
        .collect();
    assert!(
        re_replicated.is_empty() && swapped.is_empty(),
        "auto-recovery re-replicated the object-storage bookie's segments: {re_replicated:?}; \
         swapped out: {swapped:?}"
    );
    assert_eq!(
        replaced_while_down, 0.0,
        "re-replication while the bookie was down"
    );
    assert!(
        rebuilt_entries > 0,
        "the returned bookie serves nothing from the object store"
    );
    assert!(
        rec.as_deref()
            .is_some_and(|r| r.contains("\"checked\":true")),
        "the victim's disk record was not marked checked: {rec:?}\n{}",
        sb.logs(4000)
    );
}
