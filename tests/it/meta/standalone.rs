//! The embedded store survives a SIGKILL of the process writing to it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_meta::{Bytes, EphemeralOptions, Expected, LocalStore, MetadataStore};

const ENV_PATH: &str = "STRATA_META_LOCAL_PATH";

/// Writes until killed (at most 100 000 rounds), printing `ACK i` after round `i` is durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_child() {
    let Ok(path) = std::env::var(ENV_PATH) else {
        return; // Only does something when started by `local_store_survives_sigkill`.
    };
    let store = LocalStore::open(&path).await.unwrap();
    let session = store.create_session(Duration::from_secs(3)).await.unwrap();
    store
        .put_ephemeral(
            &session,
            "/s/eph",
            Bytes::from("e"),
            Expected::Any,
            EphemeralOptions::recreate(),
        )
        .await
        .unwrap();
    for i in 1..=100_000u64 {
        store
            .put("/s/counter", Bytes::from(i.to_string()), Expected::Any)
            .await
            .unwrap();
        store
            .put(
                &format!("/s/k/{i:06}"),
                Bytes::from(i.to_string()),
                Expected::Absent,
            )
            .await
            .unwrap();
        println!("ACK {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "meta::standalone::writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_PATH, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read acknowledgements on a thread; kill after 200 of them.
    let reader = std::thread::spawn(move || {
        let mut last = 0u64;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ACK ") {
                last = n.trim().parse().unwrap();
                if last >= 200 {
                    break;
                }
            }
        }
        last
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL (also when the writer was too slow)
    child.wait().unwrap();
    let acked = reader.join().unwrap();
    assert!(acked >= 200, "child stopped early (acked {acked})");

    let store = LocalStore::open(&path).await.unwrap();
    let counter: u64 = std::str::from_utf8(&store.get("/s/counter").await.unwrap().unwrap().value)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        counter >= acked,
        "acknowledged write lost: counter {counter} < acked {acked}"
    );
    let keys = store.scan("/s/k/").await.unwrap();
    assert!(keys.entries.len() as u64 >= acked);
    for (i, kv) in keys.entries.iter().enumerate() {
        assert_eq!(kv.key, format!("/s/k/{:06}", i + 1), "no hole");
    }
    assert!(
        store.get("/s/eph").await.unwrap().is_none(),
        "ephemeral key vanished with the process"
    );
    println!(
        "acked {acked}, counter after reopen {counter}, {} keys",
        keys.entries.len()
    );
    store.close().await;
}
