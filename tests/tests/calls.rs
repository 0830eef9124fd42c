//! Calls through the real relay: two `starling-client` media engines (the
//! `webrtc` crate) and the relay (str0m) interoperate, with every frame
//! encrypted end to end with SFrame under keys the relay never sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use starling_client::{CallOptions, Event};
use starling_e2e::{Db, TestRelay};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_call_delivers_every_frame_intact_both_ways() {
    let (server, relay) = TestRelay::start(Db::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.client.send_text("bob", "call me").await.unwrap();
    bob.events_until(|e| !e.is_empty()).await;
    let options = CallOptions {
        duration: Duration::from_secs(4),
        video: true,
    };
    let answering = tokio::spawn(async move {
        let report = bob
            .client
            .answer_call(Duration::from_secs(20), options)
            .await
            .unwrap();
        (bob, report)
    });
    let caller = alice.client.place_call("bob", options).await.unwrap();
    let (mut bob, callee) = answering.await.unwrap();
    for (who, report) in [("alice", &caller), ("bob", &callee)] {
        assert_eq!(report.participants, 2, "{who}: {report:?}");
        assert_eq!(report.frames_corrupt, 0, "{who}: {report:?}");
        assert!(report.frames_received > 50, "{who}: {report:?}");
        assert_eq!(report.loss, 0.0, "{who}: {report:?}");
    }
    // Bob cannot read what Alice sent before he joined (her first epoch);
    // Alice holds every key of the call.
    assert_eq!(caller.frames_without_key, 0, "{caller:?}");
    // Bob only sends once he holds the key; Alice gets all of it.
    assert!(
        caller.frames_received + 10 >= callee.frames_sent,
        "{caller:?} {callee:?}"
    );
    // The relay forwarded media and holds no participant after the call.
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("starling_relay_forwarded_packets"),
        "{metrics}"
    );
    // The missed-call logic left no entry for an answered call.
    let history = bob.client.history("alice", 10).await.unwrap();
    assert!(
        history.iter().all(|m| m.body != "missed call"),
        "{history:?}"
    );
    let _ = bob.drain().await;
    let _: Vec<Event> = alice.drain().await;
}
