//! Who is in a group when updates cross. Two members may change a group
//! at the same revision, or one may change it without having seen another's
//! change. Each update names the members it explicitly adds or removes;
//! those changes apply whatever order updates arrive in, the latest
//! revision winning per member and a removal winning a tie. A member's last
//! explicit change outweighs any full member list, so an update that only
//! renames (or was written before a removal was seen) never brings a
//! removed member back; only an explicit add at a later revision does.

use crate::content::GroupControl;
use crate::records::{GroupRecord, MemberChange};

/// Applies one explicit change to `user`; false when the member's last
/// change wins over it (a later revision, or a removal at the same one).
pub(super) fn apply_change(
    group: &mut GroupRecord,
    user: &str,
    revision: u64,
    removed: bool,
) -> bool {
    if let Some(last) = group.member_changes.get(user) {
        let wins =
            revision > last.revision || (revision == last.revision && removed && !last.removed);
        if !wins {
            return false;
        }
    }
    group
        .member_changes
        .insert(user.to_owned(), MemberChange { revision, removed });
    if removed {
        group.members.retain(|m| m != user);
    } else if !group.members.iter().any(|m| m == user) {
        group.members.push(user.to_owned());
        group.members.sort();
    }
    true
}

/// Applies an update: its explicit changes always, its name and member
/// list only when it is newer than what we have. Members with an explicit
/// change keep what that change says, whatever the list claims.
pub(super) fn apply_update(group: &mut GroupRecord, control: &GroupControl) {
    for user in &control.removed {
        apply_change(group, user, control.revision, true);
    }
    for user in &control.added {
        apply_change(group, user, control.revision, false);
    }
    if control.revision <= group.revision {
        return;
    }
    let mut members: Vec<String> = control
        .members
        .iter()
        .filter(|m| !group.member_changes.contains_key(*m))
        .cloned()
        .chain(
            group
                .member_changes
                .iter()
                .filter(|(_, change)| !change.removed)
                .map(|(user, _)| user.clone()),
        )
        .collect();
    members.sort();
    members.dedup();
    group.name = control.name.clone();
    group.members = members;
    group.revision = control.revision;
}

/// Applies `sender` leaving: a removal that wins over any earlier change
/// of theirs, whatever revision their client had.
pub(super) fn apply_leave(group: &mut GroupRecord, sender: &str, revision: u64) {
    let last = group
        .member_changes
        .get(sender)
        .map_or(0, |change| change.revision);
    apply_change(group, sender, revision.max(last), true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn group() -> GroupRecord {
        GroupRecord {
            group_id: vec![9; 16],
            name: "crew".into(),
            members: names(&["alice", "bob", "carol", "dave"]),
            revision: 5,
            active: true,
            expire_seconds: 0,
            member_changes: Default::default(),
        }
    }

    fn update(
        revision: u64,
        name: &str,
        members: &[&str],
        added: &[&str],
        removed: &[&str],
    ) -> GroupControl {
        GroupControl {
            action: 0,
            name: name.into(),
            members: names(members),
            revision,
            added: names(added),
            removed: names(removed),
        }
    }

    /// Every order of `updates` applied to a fresh group.
    fn all_orders(updates: &[GroupControl]) -> Vec<GroupRecord> {
        fn permute(
            rest: Vec<GroupControl>,
            done: Vec<GroupControl>,
            out: &mut Vec<Vec<GroupControl>>,
        ) {
            if rest.is_empty() {
                out.push(done);
                return;
            }
            for i in 0..rest.len() {
                let mut rest = rest.clone();
                let next = rest.remove(i);
                let mut done = done.clone();
                done.push(next);
                permute(rest, done, out);
            }
        }
        let mut orders = Vec::new();
        permute(updates.to_vec(), Vec::new(), &mut orders);
        orders
            .into_iter()
            .map(|order| {
                let mut g = group();
                for u in &order {
                    apply_update(&mut g, u);
                }
                g
            })
            .collect()
    }

    #[test]
    fn a_removal_survives_concurrent_renames_and_adds() {
        let updates = [
            // alice removes bob at 6; carol renames at 6 without having
            // seen it; dave adds erin at 6; carol renames again at 7 with
            // her stale list.
            update(6, "crew", &["alice", "carol", "dave"], &[], &["bob"]),
            update(6, "crew 2", &["alice", "bob", "carol", "dave"], &[], &[]),
            update(
                6,
                "crew",
                &["alice", "bob", "carol", "dave", "erin"],
                &["erin"],
                &[],
            ),
            update(7, "crew 3", &["alice", "bob", "carol", "dave"], &[], &[]),
        ];
        for g in all_orders(&updates) {
            assert_eq!(g.members, names(&["alice", "carol", "dave", "erin"]));
            assert_eq!((g.revision, g.name.as_str()), (7, "crew 3"));
        }
    }

    #[test]
    fn only_a_later_explicit_add_brings_a_member_back() {
        let updates = [
            update(6, "crew", &["alice", "carol", "dave"], &[], &["bob"]),
            // At the same revision, the removal wins.
            update(6, "crew", &["alice", "bob", "carol", "dave"], &["bob"], &[]),
        ];
        for g in all_orders(&updates) {
            assert!(!g.members.contains(&"bob".to_owned()), "{g:?}");
        }
        let updates = [
            update(6, "crew", &["alice", "carol", "dave"], &[], &["bob"]),
            update(8, "crew", &["alice", "bob", "carol", "dave"], &["bob"], &[]),
            update(7, "crew 2", &["alice", "carol", "dave"], &[], &[]),
        ];
        for g in all_orders(&updates) {
            assert_eq!(
                g.members,
                names(&["alice", "bob", "carol", "dave"]),
                "{g:?}"
            );
        }
    }

    #[test]
    fn leaving_wins_over_the_leavers_earlier_add() {
        let mut g = group();
        apply_update(
            &mut g,
            &update(
                9,
                "crew",
                &["alice", "bob", "carol", "dave", "erin"],
                &["erin"],
                &[],
            ),
        );
        // Erin's client never saw revision 9.
        apply_leave(&mut g, "erin", 5);
        assert!(!g.members.contains(&"erin".to_owned()));
        apply_update(
            &mut g,
            &update(
                10,
                "crew",
                &["alice", "bob", "carol", "dave", "erin"],
                &[],
                &[],
            ),
        );
        assert!(!g.members.contains(&"erin".to_owned()));
    }
}
