//! Joins are admitted only with a valid, unused token (which names no call
//! and no one), and refused cleanly beyond the configured limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Sim, Spec};
use starling_call_token::{TokenError, TokenSigner};
use starling_media_relay::JoinError;

fn refusal(sim: &mut Sim, call: &str, token: Option<&str>) -> JoinError {
    sim.join_with(call, token, Spec::av(1)).unwrap_err()
}

#[test]
fn missing_bad_expired_replayed_and_foreign_tokens_are_refused() {
    let mut sim = Sim::new();
    assert_eq!(refusal(&mut sim, "call-1", None), JoinError::MissingToken);
    assert_eq!(
        refusal(&mut sim, "call-1", Some("")),
        JoinError::MissingToken
    );
    assert_eq!(
        refusal(&mut sim, "call-1", Some("not-a-token")),
        JoinError::InvalidToken(TokenError::Malformed)
    );

    let other_server = TokenSigner::generate(&mut sim.rng);
    let forged = other_server
        .issue(sim.unix_now(), 60, &mut sim.rng)
        .unwrap();
    assert_eq!(
        refusal(&mut sim, "call-1", Some(&forged)),
        JoinError::InvalidToken(TokenError::BadSignature)
    );

    let old = sim
        .signer
        .issue(sim.unix_now() - 600, 60, &mut sim.rng)
        .unwrap();
    assert_eq!(
        refusal(&mut sim, "call-1", Some(&old)),
        JoinError::ExpiredToken(TokenError::Expired)
    );

    let token = sim.token();
    sim.join_with("call-1", Some(&token), Spec::av(1)).unwrap();
    assert_eq!(
        refusal(&mut sim, "call-1", Some(&token)),
        JoinError::ReplayedToken
    );

    assert_eq!(
        refusal(&mut sim, "../etc", Some(&token)),
        JoinError::BadCallId
    );
    assert_eq!(sim.engine.participant_count(), 1);
    assert_eq!(JoinError::ReplayedToken.code(), "replayed_token");
}

#[test]
fn a_bad_offer_is_refused_without_state() {
    let mut sim = Sim::new();
    let token = sim.token();
    let unix = sim.unix_now();
    let admission = sim.engine.admit("call-1", Some(&token), unix).unwrap();
    let now = sim.now;
    let err = sim
        .engine
        .join(
            admission,
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            now,
            &mut sim.rng,
        )
        .unwrap_err();
    assert!(matches!(err, JoinError::BadOffer(_)), "{err:?}");
    assert_eq!(
        (sim.engine.participant_count(), sim.engine.call_count()),
        (0, 0)
    );
}

#[test]
fn limits_refuse_with_a_reason() {
    let mut sim = Sim::with(|c| {
        c.limits.max_participants_per_call = 2;
        c.limits.max_calls = 2;
        c.limits.max_participants = 5;
    });
    sim.join("call-1", "alice", Spec::av(1));
    sim.join("call-1", "bob", Spec::av(1));
    let token = sim.token();
    let full = sim
        .join_with("call-1", Some(&token), Spec::av(1))
        .unwrap_err();
    assert_eq!(full, JoinError::CallFull { limit: 2 });
    assert_eq!(full.to_string(), "call is full (2 participants)");

    sim.join("call-2", "carol", Spec::av(1));
    let token = sim.token();
    let err = sim
        .join_with("call-3", Some(&token), Spec::av(1))
        .unwrap_err();
    assert_eq!(err, JoinError::TooManyCalls { limit: 2 });
    assert_eq!(err.code(), "relay_full");

    sim.join("call-2", "dave", Spec::av(1));
    assert_eq!(sim.engine.participant_count(), 4);
}

/// The relay cannot tell that two joins come from one device (tokens
/// name no one): a second join is a second participant, and the first is
/// freed when it leaves or falls idle.
#[test]
fn a_device_joining_again_is_a_new_participant() {
    let mut sim = Sim::new();
    let first = sim.join("call-1", "alice", Spec::av(1));
    let second = sim.join("call-1", "alice", Spec::av(1));
    assert_ne!(first, second);
    assert_eq!(sim.engine.participant_count(), 2);
    sim.leave(first, "call-1");
    assert_eq!(sim.engine.participant_count(), 1);
}
