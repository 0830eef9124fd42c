//! The argument of `crypto/SPEC.md` §16.4, 5, on akd's own marker sets: a
//! version `v` planted past an owner's newest version `o` always has a
//! past marker (or is itself one) that is a future marker of `o`. A
//! contact's check of `v` (akd's proof of the most recent version) proves
//! its past markers in the log, the owner's history check proves its
//! future markers absent, so the two checks cannot both pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use akd_core::utils::get_marker_versions;
use proptest::prelude::*;

/// Whether a contact's check of `planted` and the owner's check at
/// `owner`, both at `epoch`, look at a version in common.
fn meet(owner: u64, planted: u64, epoch: u64) -> bool {
    // The contact's check: the most recent version alone.
    let (past, _) = get_marker_versions(planted, planted, epoch);
    // The owner's check: its complete history, 1 to `owner`.
    let (_, future) = get_marker_versions(1, owner, epoch);
    future.contains(&planted) || past.iter().any(|marker| future.contains(marker))
}

#[test]
fn every_planted_version_to_700_meets_the_owners_markers() {
    for planted in 2..=700u64 {
        for owner in 1..planted {
            // The owner checks at the earliest epoch that holds the
            // planted version: the fewest future markers.
            assert!(meet(owner, planted, planted), "{owner} against {planted}");
        }
    }
}

#[test]
fn the_spec_example_meets_at_six() {
    let (past, _) = get_marker_versions(7, 7, 7);
    let (_, future) = get_marker_versions(1, 5, 7);
    assert!(past.contains(&6) && future.contains(&6));
    // A lookup proof of 7 alone shows only its marker 4, which the owner
    // at 5 holds: it does not meet the owner's future markers.
    assert!(!future.contains(&4));
}

proptest! {
    #[test]
    fn planted_versions_to_2_pow_40_meet_the_owners_markers(
        planted in 2u64..(1 << 40),
        owner_fraction in 0.0f64..1.0,
        later in 0u64..(1 << 20),
    ) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let owner = ((planted - 1) as f64 * owner_fraction) as u64 + 1;
        let owner = owner.min(planted - 1);
        prop_assert!(meet(owner, planted, planted + later), "{} against {}", owner, planted);
    }
}
