//! Sends as the group-commit writer sees them: envelopes addressed by
//! username, checked against each destination's device list inside the
//! transaction that stores them, so the check and the insert see the same
//! devices and a send costs no read of its own.
//!
//! [`plan`] is the pure part: given the accounts the transaction read, it
//! decides per send whether it is stored or refused, and which rows go in.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use starling_protocol::api::FullQueue;

use super::queue_usage::QueueUsage;
use super::{BatchOp, NewEnvelope};

/// A send to store: envelopes for one or more accounts.
#[derive(Debug)]
pub struct SendOp {
    /// The sending device, which its own account's list leaves out;
    /// `None` for an unidentified send (sealed, authorised by access keys).
    pub sender: Option<(i64, u32)>,
    /// One entry per destination account.
    pub destinations: Vec<Destination>,
}

/// The envelopes of a send for one account.
#[derive(Debug)]
pub struct Destination {
    /// The account's username.
    pub username: String,
    /// One per device; their `account_id` is ignored and filled in from the
    /// username.
    pub envelopes: Vec<NewEnvelope>,
}

pub use starling_protocol::api::StaleLists;

/// Why a send was refused as a whole (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRefusal {
    /// A destination has no enabled account.
    UnknownAccount,
    /// The sender's device lists are out of date for these accounts.
    StaleDevices(BTreeMap<String, StaleLists>),
    /// The sending device was removed, or its account disabled, before
    /// the send was committed.
    SenderRevoked,
    /// Every destination device's queue is full.
    QueueFull(Vec<FullQueue>),
}

/// Devices of enabled accounts, as the transaction read them: the
/// destinations' devices and the senders'.
pub(super) type EnabledDevices = HashSet<(i64, u32)>;

/// The devices of the accounts read for the destinations.
pub(super) fn enabled_devices(accounts: &Accounts) -> EnabledDevices {
    accounts
        .values()
        .flat_map(|(account_id, devices)| devices.iter().map(move |d| (*account_id, *d)))
        .collect()
}

/// The accounts of the batch's senders, each once (the PostgreSQL commit
/// reads them with the destinations').
pub(super) fn sender_accounts(ops: &[&BatchOp]) -> Vec<i64> {
    let accounts: BTreeSet<i64> = ops
        .iter()
        .filter_map(|op| match op {
            BatchOp::Send(send) => send.sender.map(|(account, _)| account),
            _ => None,
        })
        .collect();
    accounts.into_iter().collect()
}

/// The batch's sending devices not already known to be enabled (their
/// account is no destination of the batch), each once: the transaction
/// reads these too, so that a device removed or an account disabled
/// after it authenticated cannot have a send committed.
pub(super) fn unknown_senders(ops: &[&BatchOp], enabled: &EnabledDevices) -> Vec<(i64, u32)> {
    let senders: BTreeSet<(i64, u32)> = ops
        .iter()
        .filter_map(|op| match op {
            BatchOp::Send(send) => send.sender.filter(|s| !enabled.contains(s)),
            _ => None,
        })
        .collect();
    senders.into_iter().collect()
}

/// An enabled account's id and device ids, as the transaction read them.
pub(super) type Accounts = HashMap<String, (i64, BTreeSet<u32>)>;

/// Adds one row of the account read (an account joined with one of its
/// devices, or with none) to `accounts`.
pub(super) fn add_account_row(
    accounts: &mut Accounts,
    username: &str,
    account_id: i64,
    device: Option<i64>,
) {
    let entry = accounts
        .entry(username.to_string())
        .or_insert_with(|| (account_id, BTreeSet::new()));
    if let Some(device) = device {
        entry.1.insert(u32::try_from(device).unwrap_or(0));
    }
}

/// A row to insert: an envelope and the account it goes to.
#[derive(Debug, Clone, Copy)]
pub(super) struct InsertRow<'a> {
    /// Destination account.
    pub account_id: i64,
    /// The envelope.
    pub envelope: &'a NewEnvelope,
    /// The send it belongs to, by index in the batch, and the username it
    /// addresses; `None` for envelopes stored as they are.
    pub send: Option<(usize, &'a str)>,
}

/// What a batch inserts, and which of its sends are refused (by index).
#[derive(Debug, Default)]
pub(super) struct Plan<'a> {
    /// Rows to insert, in the order of the operations.
    pub rows: Vec<InsertRow<'a>>,
    /// Per operation, `Some` if it is refused.
    pub refusals: Vec<Option<SendRefusal>>,
    /// Per operation, the devices left out for a full queue.
    pub full: Vec<Vec<FullQueue>>,
}

impl Plan<'_> {
    /// The devices the plan's sends insert envelopes for.
    pub(super) fn send_devices(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.rows
            .iter()
            .filter(|row| row.send.is_some())
            .map(|row| (row.account_id, row.envelope.device_id))
    }

    /// Leaves out the envelopes for devices whose queue is full, counting
    /// the others into `usage`. A send left with nothing is refused
    /// ([`SendRefusal::QueueFull`]); one left with something is stored,
    /// and told which devices it missed.
    pub(super) fn apply_queue_caps(&mut self, usage: &mut QueueUsage) {
        let mut kept = vec![0usize; self.refusals.len()];
        self.rows.retain(|row| {
            let Some((op, username)) = row.send else {
                return true;
            };
            let device = (row.account_id, row.envelope.device_id);
            let size = row.envelope.content.len() as u64;
            if usage.admit(device, size) {
                kept[op] += 1;
                return true;
            }
            self.full[op].push(FullQueue {
                destination: username.to_string(),
                device_id: device.1,
            });
            false
        });
        for (op, full) in self.full.iter_mut().enumerate() {
            if !full.is_empty() && kept[op] == 0 {
                self.refusals[op] = Some(SendRefusal::QueueFull(std::mem::take(full)));
            }
        }
    }
}

/// The usernames the batch's sends address, each once.
pub(super) fn destination_usernames<'a>(ops: &[&'a BatchOp]) -> Vec<&'a str> {
    let names: BTreeSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            BatchOp::Send(send) => Some(send.destinations.iter().map(|d| d.username.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    names.into_iter().collect()
}

/// Decides the batch's inserts given the destinations' accounts and the
/// enabled devices among the senders.
pub(super) fn plan<'a>(
    ops: &[&'a BatchOp],
    accounts: &Accounts,
    enabled: &EnabledDevices,
) -> Plan<'a> {
    let mut plan = Plan {
        rows: Vec::new(),
        refusals: Vec::with_capacity(ops.len()),
        full: vec![Vec::new(); ops.len()],
    };
    for (index, op) in ops.iter().enumerate() {
        let refusal = match op {
            BatchOp::Insert(envelopes) => {
                plan.rows.extend(envelopes.iter().map(|envelope| InsertRow {
                    account_id: envelope.account_id,
                    envelope,
                    send: None,
                }));
                None
            }
            BatchOp::Send(send) if send.sender.is_some_and(|s| !enabled.contains(&s)) => {
                Some(SendRefusal::SenderRevoked)
            }
            BatchOp::Send(send) => match check(index, send, accounts) {
                Ok(rows) => {
                    plan.rows.extend(rows);
                    None
                }
                Err(refusal) => Some(refusal),
            },
            BatchOp::Acknowledge { .. } => None,
        };
        plan.refusals.push(refusal);
    }
    plan
}

/// The rows of one send, or why it is refused.
fn check<'a>(
    index: usize,
    send: &'a SendOp,
    accounts: &Accounts,
) -> Result<Vec<InsertRow<'a>>, SendRefusal> {
    let mut rows = Vec::new();
    let mut stale = BTreeMap::new();
    for destination in &send.destinations {
        let Some((account_id, devices)) = accounts.get(&destination.username) else {
            return Err(SendRefusal::UnknownAccount);
        };
        let expected: BTreeSet<u32> = devices
            .iter()
            .copied()
            .filter(|device| Some((*account_id, *device)) != send.sender)
            .collect();
        let named: BTreeSet<u32> = destination.envelopes.iter().map(|e| e.device_id).collect();
        if named == expected {
            rows.extend(destination.envelopes.iter().map(|envelope| InsertRow {
                account_id: *account_id,
                envelope,
                send: Some((index, destination.username.as_str())),
            }));
        } else {
            let lists = StaleLists {
                missing: expected.difference(&named).copied().collect(),
                extra: named.difference(&expected).copied().collect(),
            };
            stale.insert(destination.username.clone(), lists);
        }
    }
    if stale.is_empty() {
        Ok(rows)
    } else {
        Err(SendRefusal::StaleDevices(stale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(device_id: u32) -> NewEnvelope {
        NewEnvelope {
            envelope_id: [device_id.to_le_bytes()[0]; 16],
            account_id: 0,
            device_id,
            sender: None,
            sender_device: None,
            created_at: 0,
            content: vec![1],
        }
    }

    fn send(sender: (i64, u32), to: &[(&str, &[u32])]) -> BatchOp {
        unidentified_or(Some(sender), to)
    }

    fn unidentified_or(sender: Option<(i64, u32)>, to: &[(&str, &[u32])]) -> BatchOp {
        BatchOp::Send(SendOp {
            sender,
            destinations: to
                .iter()
                .map(|(username, devices)| Destination {
                    username: (*username).to_string(),
                    envelopes: devices.iter().map(|d| envelope(*d)).collect(),
                })
                .collect(),
        })
    }

    fn accounts() -> Accounts {
        HashMap::from([
            ("alice".to_string(), (1, BTreeSet::from([1, 2]))),
            ("bob".to_string(), (2, BTreeSet::from([1, 3]))),
        ])
    }

    #[test]
    fn a_current_list_is_stored_under_the_destination_account() {
        let op = send((1, 1), &[("bob", &[1, 3]), ("alice", &[2])]);
        let plan = plan(&[&op], &accounts(), &enabled_devices(&accounts()));
        assert_eq!(plan.refusals, vec![None]);
        let rows: Vec<(i64, u32)> = plan
            .rows
            .iter()
            .map(|r| (r.account_id, r.envelope.device_id))
            .collect();
        // The sender's own device is not expected in its own account.
        assert_eq!(rows, vec![(2, 1), (2, 3), (1, 2)]);
    }

    #[test]
    fn a_stale_list_refuses_the_whole_send_and_names_the_difference() {
        let good = send((1, 1), &[("bob", &[1, 3])]);
        let stale = send((1, 1), &[("alice", &[2]), ("bob", &[1, 4])]);
        let plan = plan(&[&good, &stale], &accounts(), &enabled_devices(&accounts()));
        let expected = BTreeMap::from([(
            "bob".to_string(),
            StaleLists {
                missing: vec![3],
                extra: vec![4],
            },
        )]);
        assert_eq!(
            plan.refusals,
            vec![None, Some(SendRefusal::StaleDevices(expected))]
        );
        // Only the good send's rows go in; none of the refused one's.
        assert_eq!(plan.rows.len(), 2);
        assert!(plan.rows.iter().all(|r| r.account_id == 2));
    }

    #[test]
    fn an_unknown_account_refuses_the_send() {
        let op = send((1, 1), &[("bob", &[1, 3]), ("carol", &[1])]);
        let plan = plan(&[&op], &accounts(), &enabled_devices(&accounts()));
        assert_eq!(plan.refusals, vec![Some(SendRefusal::UnknownAccount)]);
        assert!(plan.rows.is_empty());
    }

    #[test]
    fn a_send_from_a_device_not_read_as_enabled_is_refused_alone() {
        let from_removed = send((1, 7), &[("bob", &[1, 3])]);
        let from_other = send((3, 1), &[("bob", &[1, 3])]);
        let good = send((1, 1), &[("bob", &[1, 3])]);
        let ops = [&from_removed, &from_other, &good];
        let mut enabled = enabled_devices(&accounts());
        assert_eq!(unknown_senders(&ops, &enabled), vec![(1, 7), (3, 1)]);
        // The transaction found account 3's device 1 enabled, not 1's 7.
        enabled.insert((3, 1));
        let plan = plan(&ops, &accounts(), &enabled);
        assert_eq!(
            plan.refusals,
            vec![Some(SendRefusal::SenderRevoked), None, None]
        );
        assert_eq!(plan.rows.len(), 4);
    }

    #[test]
    fn an_unidentified_send_expects_every_device_and_is_never_revoked() {
        let op = unidentified_or(None, &[("alice", &[1, 2]), ("bob", &[1, 3])]);
        let enabled = enabled_devices(&accounts());
        assert!(unknown_senders(&[&op], &enabled).is_empty());
        assert!(sender_accounts(&[&op]).is_empty());
        let plan = plan(&[&op], &accounts(), &enabled);
        assert_eq!(plan.refusals, vec![None]);
        assert_eq!(plan.rows.len(), 4);
        // Leaving out a device of alice's is stale: no device is "the
        // sender's own" when there is no sender.
        let short = unidentified_or(None, &[("alice", &[2])]);
        let plan = super::plan(&[&short], &accounts(), &enabled);
        assert!(matches!(
            plan.refusals[0],
            Some(SendRefusal::StaleDevices(_))
        ));
    }

    #[test]
    fn full_queues_leave_out_their_devices_or_refuse_a_send_left_with_nothing() {
        use super::super::queue_usage::{QueueCaps, QueueUsage};
        let now = std::time::Instant::now();
        let mut usage = QueueUsage::new(QueueCaps {
            max_envelopes: 10,
            max_bytes: 1_000,
        });
        usage.read((2, 1), 10, 10, now);
        usage.read((2, 3), 0, 0, now);
        usage.read((1, 1), 0, 1_000, now);
        usage.read((1, 2), 10, 10, now);
        let partly = send((1, 1), &[("bob", &[1, 3])]);
        let wholly = send((2, 3), &[("alice", &[1, 2])]);
        let ops = [&partly, &wholly];
        let mut plan = plan(&ops, &accounts(), &enabled_devices(&accounts()));
        plan.apply_queue_caps(&mut usage);
        let full = |destination: &str, device_id| FullQueue {
            destination: destination.to_string(),
            device_id,
        };
        assert_eq!(
            plan.refusals,
            vec![
                None,
                Some(SendRefusal::QueueFull(vec![
                    full("alice", 1),
                    full("alice", 2)
                ]))
            ]
        );
        assert_eq!(plan.full[0], vec![full("bob", 1)]);
        let rows: Vec<(i64, u32)> = plan.send_devices().collect();
        assert_eq!(rows, vec![(2, 3)]);
    }

    #[test]
    fn usernames_are_listed_once() {
        let a = send((1, 1), &[("bob", &[1, 3])]);
        let b = send((2, 1), &[("alice", &[1, 2]), ("bob", &[3])]);
        assert_eq!(destination_usernames(&[&a, &b]), vec!["alice", "bob"]);
    }
}
