//! Logs carry no addresses, tokens, call ids, usernames, participant
//! secrets or media, at any level the relay or str0m (debug) writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Sim, Spec};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_leak_nothing_identifying() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("starling_media_relay=trace,str0m=debug,is=debug,dimpl=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let mut secrets = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let mut sim = Sim::new();
        let token = sim.token();
        secrets.push(token.clone());
        let a = sim
            .join_with("secret-call", Some(&token), Spec::av(1))
            .unwrap();
        let b = sim.join("secret-call", "bob", Spec::av(1));
        sim.connect(&[a, b]);
        sim.talk(a, 0xA1, 5);
        secrets.push(sim.clients[a].key.clone().unwrap().to_text());
        sim.leave(a, "secret-call");
        sim.clients[b].silent = true;
        sim.run(Duration::from_secs(12));
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("joined"),
        "the test captured the relay's logs"
    );
    for needle in ["198.51.100.", "203.0.113.1", "secret-call", "alice", "bob"]
        .into_iter()
        .map(str::to_owned)
        .chain(secrets)
    {
        assert!(!logs.contains(&needle), "logs contain {needle}");
    }
}
