//! Calls through the real relay: two `starling-client` media engines (the
//! `webrtc` crate) and the relay (str0m) interoperate, with every frame
//! encrypted end to end with SFrame under keys the relay never sees.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use starling_client::{CallOptions, Event};
use starling_e2e::TestRelay;
use starling_e2e::wait_for_participants;
use starling_test_support::{DbKind, metrics, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_call_delivers_every_frame_intact_both_ways() {
    let (server, relay) = TestRelay::start(DbKind::Sqlite).await;
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
        // Every frame's key id matched the relay's stream, none replayed;
        // every key came from the device allowed to send it.
        assert_eq!(report.frames_refused, 0, "{who}: {report:?}");
        assert_eq!(report.keys_refused, 0, "{who}: {report:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_relay_forwards_cannot_be_decrypted_without_the_call_keys() {
    use starling_client::call::keys::{FrameDecryptor, OpenError};
    use starling_client::call::media::MediaSession;

    let (server, _relay) = TestRelay::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    // Mallory has an account, and, like the relay's operator, a valid token
    // for the call: she gets every forwarded packet, but no key.
    let mallory = server.client("mallory").await;
    alice.client.send_text("bob", "call me").await.unwrap();
    bob.events_until(|e| !e.is_empty()).await;
    let options = CallOptions {
        duration: Duration::from_secs(4),
        video: true,
    };
    let caller = tokio::spawn(async move {
        let report = alice.client.place_call("bob", options).await.unwrap();
        (alice, report)
    });
    let incoming = bob
        .client
        .wait_for_call(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(incoming.caller, "alice");
    let token = mallory.client.api().call_token().await.unwrap();
    let (tap, mut captured) = MediaSession::join(
        token.relay_url.as_deref().unwrap(),
        &incoming.call_id,
        &token.token,
        2,
        None,
    )
    .await
    .unwrap();
    let callee = bob.client.answer(incoming, options).await.unwrap();
    let (_alice, caller) = caller.await.unwrap();
    tap.leave().await;
    let mut frames = Vec::new();
    while let Ok(frame) = captured.try_recv() {
        frames.push(frame.ciphertext);
    }
    assert!(frames.len() > 50, "the tap saw {} frames", frames.len());
    let mut no_keys = FrameDecryptor::default();
    for frame in &frames {
        assert_eq!(no_keys.decrypt(frame).unwrap_err(), OpenError::NoKey);
    }
    assert!(caller.frames_received > 50 && callee.frames_received > 50);
    assert_eq!(caller.frames_corrupt + callee.frames_corrupt, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_call_of_six_rekeys_at_every_join_and_leave() {
    let (server, relay) = TestRelay::start(DbKind::Sqlite).await;
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut clients = Vec::new();
    for name in names {
        clients.push(server.client(name).await);
    }
    let others: Vec<String> = names[1..].iter().map(|s| s.to_string()).collect();
    clients[0]
        .client
        .create_group("call six", &others)
        .await
        .unwrap();
    for member in clients.iter_mut().skip(1) {
        member
            .events_until(|e| e.iter().any(|e| matches!(e, Event::GroupChanged { .. })))
            .await;
    }
    let mut alice = clients.remove(0);
    let options = |secs| CallOptions {
        duration: Duration::from_secs(secs),
        video: false,
    };
    let mut callees = Vec::new();
    for (i, mut member) in clients.into_iter().enumerate() {
        // erin (i = 3) joins late, once the caller and the four others are
        // on the relay; frank (i = 4) leaves early. The caller stays well
        // past the others: each callee's first media keys to the others
        // set up pairwise sessions, which takes a while on a busy machine.
        let (late, stay) = match i {
            3 => (true, 5),
            4 => (false, 4),
            _ => (false, 8),
        };
        let relay_url = relay.url.clone();
        callees.push(tokio::spawn(async move {
            if late {
                wait_for_participants(&relay_url, Duration::from_secs(30), 5).await;
            }
            let report = member
                .client
                .answer_call(Duration::from_secs(30), options(stay))
                .await
                .unwrap();
            (member, report)
        }));
    }
    let caller = alice
        .client
        .place_call("call six", options(12))
        .await
        .unwrap();
    let mut reports = Vec::new();
    for callee in callees {
        reports.push(callee.await.unwrap().1);
    }
    let final_epoch = *caller.epochs.last().unwrap();
    assert_eq!(caller.participants, 6, "{caller:?}");
    // Five joins and five leaves (everyone leaves before the caller hangs
    // up): ten fresh epochs after the first.
    assert_eq!(final_epoch, 10, "{caller:?}");
    for (report, name) in reports.iter().zip(&names[1..]) {
        assert_eq!(report.frames_corrupt, 0, "{name}: {report:?}");
        // (A key may be refused here as stale: with joins this close
        // together, a participant's key of an epoch can arrive after two
        // newer epochs, and only two are kept.)
        assert!(report.frames_received > 20, "{name}: {report:?}");
    }
    assert_eq!(caller.frames_corrupt, 0, "{caller:?}");
    let erin = &reports[3];
    let frank = &reports[4];
    // The late joiner was never given a key from before it joined...
    let erin_first = erin.epochs[0];
    assert!(erin_first >= 4, "{erin:?}");
    assert!(
        caller.epochs.iter().filter(|e| **e < erin_first).count() >= 4,
        "{caller:?}"
    );
    // ...and the leaver none from after it left.
    let frank_last = *frank.epochs.last().unwrap();
    assert!(frank_last < final_epoch, "{frank:?} {caller:?}");
}

/// Runs `starling --home HOME --json ARGS` and returns its JSON lines.
fn starling(home: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let output = std::process::Command::new(starling_e2e::workspace_binary("starling"))
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .env("STARLING_PASSPHRASE", "correct horse battery")
        .env_remove("STARLING_HOME")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "starling {args:?}: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_places_and_answers_a_call_and_reports_it() {
    let (server, _relay) = TestRelay::start(DbKind::Sqlite).await;
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for (home, name) in homes.iter().zip(["alice", "bob"]) {
        let invite = server.invite();
        starling(
            home.path(),
            &[
                "register",
                "--server",
                &server.url,
                "--username",
                name,
                "--invite",
                &invite,
                "--ca-fingerprint",
                &server.fingerprint,
            ],
        );
    }
    let bob_home = homes[1].path().to_path_buf();
    let answering = std::thread::spawn(move || {
        starling(
            &bob_home,
            &["answer", "--wait", "30", "--duration", "4", "--audio-only"],
        )
    });
    // Bob's `answer` is connected and ringing before the call is placed.
    wait_until(
        Duration::from_secs(30),
        "bob's answer to connect",
        || async {
            let metrics = server.metrics().await;
            metrics::value(&metrics, "starling_websocket_connections").unwrap_or(0.0) >= 1.0
        },
    )
    .await;
    let caller = starling(
        homes[0].path(),
        &["call", "bob", "--duration", "4", "--audio-only"],
    );
    let callee = answering.join().unwrap();
    for report in [&caller[0], &callee[0]] {
        for field in [
            "frames_sent",
            "frames_received",
            "loss",
            "latency_p50_ms",
            "latency_p99_ms",
        ] {
            assert!(report[field].is_number(), "{field} in {report}");
        }
        assert!(report["frames_received"].as_u64().unwrap() > 50, "{report}");
        assert_eq!(report["frames_corrupt"], 0, "{report}");
    }
    // The call shows in Bob's history as it rang.
    let history = starling(homes[1].path(), &["history", "alice"]);
    assert!(history.iter().any(|l| l["kind"] == "call"), "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_killed_without_hanging_up_is_dropped_and_freed() {
    let (server, relay) = TestRelay::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let bob_home = tempfile::tempdir().unwrap();
    let invite = server.invite();
    starling(
        bob_home.path(),
        &[
            "register",
            "--server",
            &server.url,
            "--username",
            "bob",
            "--invite",
            &invite,
            "--ca-fingerprint",
            &server.fingerprint,
        ],
    );
    let mut bob = std::process::Command::new(starling_e2e::workspace_binary("starling"))
        .arg("--home")
        .arg(bob_home.path())
        .args(["answer", "--wait", "30", "--duration", "60", "--audio-only"])
        .env("STARLING_PASSPHRASE", "correct horse battery")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bob is killed once media has flowed for a while: both are on the
    // relay and it has forwarded about two seconds of audio both ways.
    let relay_url = relay.url.clone();
    let killer = tokio::spawn(async move {
        wait_for_participants(&relay_url, Duration::from_secs(30), 2).await;
        let metrics_url = format!("{relay_url}/metrics");
        wait_until(Duration::from_secs(30), "200 packets forwarded", || async {
            metrics::scrape(&metrics_url).await.is_ok_and(|text| {
                metrics::value(&text, "starling_relay_forwarded_packets_total")
                    .is_some_and(|n| n >= 200.0)
            })
        })
        .await;
        bob.kill().unwrap();
        bob.wait().unwrap();
    });
    let started = std::time::Instant::now();
    let report = alice
        .client
        .place_call(
            "bob",
            CallOptions {
                duration: Duration::from_secs(60),
                video: false,
            },
        )
        .await
        .unwrap();
    killer.await.unwrap();
    // Bob joined (epoch 1) and, once silent long enough, was dropped with a
    // fresh key (epoch 2), which ended the one-to-one call early.
    assert_eq!(report.epochs, [0, 1, 2], "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(55), "{report:?}");
    assert!(report.frames_received > 20, "{report:?}");
    // The relay freed Bob's leg too.
    relay
        .wait_for_participants(Duration::from_secs(30), 0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_needs_nothing_but_the_server() {
    // No relay process, no key copied, no relay URL: the server runs the
    // relay in-process and clients reach it through the server's own URL
    // and pinned certificate.
    let server = starling_e2e::TestServer::start(DbKind::Sqlite).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let token = alice.client.api().call_token().await.unwrap();
    assert_eq!(token.relay_url.as_deref(), Some("/relay"));
    alice.client.send_text("bob", "call me").await.unwrap();
    bob.events_until(|e| !e.is_empty()).await;
    let options = CallOptions {
        duration: Duration::from_secs(3),
        video: false,
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
    let (_bob, callee) = answering.await.unwrap();
    for (who, report) in [("alice", &caller), ("bob", &callee)] {
        assert_eq!(report.participants, 2, "{who}: {report:?}");
        assert_eq!(report.frames_corrupt, 0, "{who}: {report:?}");
        assert!(report.frames_received > 50, "{who}: {report:?}");
    }
    // The relay's metrics are the server's, behind its scraper token.
    let metrics = metrics::scrape(&format!("{}/relay/metrics", server.url))
        .await
        .unwrap();
    assert!(
        metrics.contains("starling_relay_forwarded_packets"),
        "{metrics}"
    );
}
