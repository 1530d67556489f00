//! Bookie registration in etcd: the key appears, is refreshed, vanishes after SIGKILL + TTL, and
//! is deleted at once on a graceful stop.

use std::time::Duration;

use super::sandbox::{REGISTRATION_TTL, Sandbox, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookie_registers_updates_and_expires_after_sigkill() {
    let mut sb = Sandbox::start(1).await;
    let meta = sb.meta().await;
    let id = sb.bookies[0].addr.clone();
    let key = meta.paths().bookie(&id);

    // appears, with its address and space figures
    let (info, stat) = wait_for(Duration::from_secs(10), "registration", || async {
        meta.get::<strata_meta::model::BookieInfo>(&key)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(info.address, id);
    assert_eq!(info.bookie_id.0, id);
    assert!(info.total_space_bytes > 0, "{info:?}");
    assert!(!info.read_only);
    assert!(
        stat.session.is_some(),
        "registration must be lease-bound: {stat:?}"
    );

    // refreshed periodically (the version moves)
    let v0 = stat.version;
    wait_for(Duration::from_secs(10), "a registration update", || async {
        let (_, s) = meta
            .get::<strata_meta::model::BookieInfo>(&key)
            .await
            .unwrap()?;
        (s.version > v0).then_some(())
    })
    .await;
    assert_eq!(meta.bookies().await.unwrap().len(), 1);

    // SIGKILL: the key outlives the process only until the lease's TTL runs out
    sb.kill_bookie(0);
    wait_for(
        REGISTRATION_TTL + Duration::from_secs(15),
        "the registration to expire",
        || async {
            meta.get::<strata_meta::model::BookieInfo>(&key)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    // restarted: registered again
    sb.start_bookie(0).await;
    wait_for(Duration::from_secs(10), "re-registration", || async {
        meta.get::<strata_meta::model::BookieInfo>(&key)
            .await
            .unwrap()
            .map(|_| ())
    })
    .await;
    meta.store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_bookies_all_registered() {
    let sb = Sandbox::start(4).await;
    let meta = sb.meta().await;
    let mut want: Vec<String> = sb.bookies.iter().map(|b| b.addr.clone()).collect();
    want.sort();
    let got = wait_for(Duration::from_secs(15), "4 registered bookies", || async {
        let mut ids: Vec<String> = meta
            .bookies()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.address)
            .collect();
        ids.sort();
        (ids.len() == 4).then_some(ids)
    })
    .await;
    assert_eq!(got, want);
    meta.store().close().await;
}
