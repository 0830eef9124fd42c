//! Trust on first use: what seeing a device's identity key means, given
//! what the store held before. The first key of an account is trusted; a
//! new device or a changed key of a known account is a warning and marks
//! the contact's safety number changed, unless a device of the account
//! whose key we already hold vouched for it when it linked it (a
//! cross-signed link, `crypto/SPEC.md` §2.5): that is the account's owner
//! adding a device, and a verified contact stays verified. For our own
//! account a device that was there when this home was set up, or that one
//! of our devices vouched for, is ours; any other is announced as newly
//! linked (or re-keyed), without blocking anything.
//!
//! [`observe`] is the decision alone; the shell's store reads the prior
//! state, records the key and carries out the outcome in one transaction.

/// What observing a device's identity key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustChange {
    /// Already known with this key.
    Known,
    /// First key ever seen for this account (trusted on first use).
    FirstContact,
    /// A new device of a known account, or a device whose key changed.
    Changed,
    /// A new device of a known account, vouched for by a device of the
    /// account whose key we hold.
    Linked,
}

/// The key stored for the device before this one was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredKey {
    /// None: the device is new to us.
    Absent,
    /// The same key.
    Same,
    /// Another key.
    Different,
}

/// What the store held before the key was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// The key stored for this device.
    pub stored: StoredKey,
    /// Some device of the account was seen before.
    pub account_known: bool,
    /// The account is our own.
    pub own_account: bool,
    /// Our own account's device was there when this home was set up (only
    /// asked for an own device with no stored key; `false` otherwise).
    pub present_at_setup: bool,
    /// The device of the account whose held key vouched for this one's
    /// (checked by the caller, [`crate::trust::vouched_by`]).
    pub vouched_by: Option<u32>,
}

/// What to record for an observed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// What changed.
    pub change: TrustChange,
    /// The warning a person must see, if any (no key material in it).
    pub warning: Option<String>,
    /// Mark the contact's safety number changed (blocks sending to a
    /// verified contact until verified again).
    pub mark_identity_changed: bool,
}

/// The outcome of seeing a key of `username`'s device `device_id`.
pub fn observe(username: &str, device_id: u32, prior: &Prior) -> Observed {
    let change = match prior.stored {
        StoredKey::Same => TrustChange::Known,
        // Only a new device is vouched for: a device's key never changes
        // by a link. (Only a held key vouches, so a contact's first device
        // never is; our own account's may be, by this very device.)
        StoredKey::Absent if prior.vouched_by.is_some() => TrustChange::Linked,
        StoredKey::Absent if !prior.account_known => TrustChange::FirstContact,
        StoredKey::Absent | StoredKey::Different => TrustChange::Changed,
    };
    if matches!(change, TrustChange::Known | TrustChange::Linked) {
        return Observed {
            change,
            warning: None,
            mark_identity_changed: false,
        };
    }
    let new_device = prior.stored == StoredKey::Absent;
    let warning = if prior.own_account {
        // Devices the account had when this home was set up are ours.
        if new_device && prior.present_at_setup {
            None
        } else if new_device {
            Some(format!(
                "a new device ({device_id}) was linked to your account; if it is not yours, remove it: starling devices remove {device_id}"
            ))
        } else {
            Some(format!(
                "your device {device_id} has a new identity key; if you did not reinstall it, remove it: starling devices remove {device_id}"
            ))
        }
    } else if change == TrustChange::FirstContact {
        None
    } else if !new_device {
        Some(format!(
            "{username}'s device {device_id} has a new identity key: the safety number changed"
        ))
    } else {
        Some(format!(
            "{username} has a new device ({device_id}): the safety number changed"
        ))
    };
    Observed {
        change,
        mark_identity_changed: warning.is_some() && !prior.own_account,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(stored: StoredKey, account_known: bool, own: bool, at_setup: bool) -> Prior {
        Prior {
            stored,
            account_known,
            own_account: own,
            present_at_setup: at_setup,
            vouched_by: None,
        }
    }

    fn vouched(stored: StoredKey, own: bool) -> Prior {
        Prior {
            vouched_by: Some(1),
            ..prior(stored, true, own, false)
        }
    }

    #[test]
    fn a_device_linked_by_a_known_device_keeps_the_account_trusted() {
        for own in [false, true] {
            let linked = observe("bob", 3, &vouched(StoredKey::Absent, own));
            assert_eq!(linked.change, TrustChange::Linked);
            assert_eq!(linked.warning, None);
            assert!(!linked.mark_identity_changed);
        }
    }

    #[test]
    fn a_vouch_does_not_excuse_a_changed_key() {
        for own in [false, true] {
            let rekeyed = observe("bob", 1, &vouched(StoredKey::Different, own));
            assert_eq!(rekeyed.change, TrustChange::Changed);
            assert!(rekeyed.warning.is_some());
            assert_eq!(rekeyed.mark_identity_changed, !own);
        }
    }

    #[test]
    fn the_first_own_device_seen_is_ours_when_this_device_vouched_for_it() {
        let linked = observe(
            "me",
            2,
            &Prior {
                vouched_by: Some(1),
                ..prior(StoredKey::Absent, false, true, false)
            },
        );
        assert_eq!(linked.change, TrustChange::Linked);
        assert_eq!(linked.warning, None);
    }

    #[test]
    fn a_known_key_changes_nothing() {
        for own in [false, true] {
            let seen = observe("bob", 2, &prior(StoredKey::Same, true, own, false));
            assert_eq!(seen.change, TrustChange::Known);
            assert_eq!(seen.warning, None);
            assert!(!seen.mark_identity_changed);
        }
    }

    #[test]
    fn a_contact_is_trusted_first_then_changes_warn_and_block() {
        let first = observe("bob", 1, &prior(StoredKey::Absent, false, false, false));
        assert_eq!(first.change, TrustChange::FirstContact);
        assert_eq!(first.warning, None);
        assert!(!first.mark_identity_changed);

        let device = observe("bob", 2, &prior(StoredKey::Absent, true, false, false));
        assert_eq!(device.change, TrustChange::Changed);
        assert_eq!(
            device.warning.as_deref(),
            Some("bob has a new device (2): the safety number changed")
        );
        assert!(device.mark_identity_changed);

        let rekeyed = observe("bob", 1, &prior(StoredKey::Different, true, false, false));
        assert_eq!(rekeyed.change, TrustChange::Changed);
        assert_eq!(
            rekeyed.warning.as_deref(),
            Some("bob's device 1 has a new identity key: the safety number changed")
        );
        assert!(rekeyed.mark_identity_changed);
    }

    #[test]
    fn own_devices_are_announced_never_blocked() {
        let at_setup = observe("me", 2, &prior(StoredKey::Absent, true, true, true));
        assert_eq!(at_setup.warning, None);
        let linked = observe("me", 3, &prior(StoredKey::Absent, true, true, false));
        assert_eq!(
            linked.warning.as_deref(),
            Some(
                "a new device (3) was linked to your account; if it is not yours, remove it: starling devices remove 3"
            )
        );
        assert!(!linked.mark_identity_changed);
        let rekeyed = observe("me", 2, &prior(StoredKey::Different, true, true, false));
        assert_eq!(
            rekeyed.warning.as_deref(),
            Some(
                "your device 2 has a new identity key; if you did not reinstall it, remove it: starling devices remove 2"
            )
        );
        assert!(!rekeyed.mark_identity_changed);
        // The first own device ever seen is still a first contact.
        let first = observe("me", 2, &prior(StoredKey::Absent, false, true, false));
        assert_eq!(first.change, TrustChange::FirstContact);
        assert!(first.warning.is_some());
    }
}
