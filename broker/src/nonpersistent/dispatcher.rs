//! Which consumer of a non-persistent subscription gets a message, per subscription type
//! (Pulsar's `NonPersistentDispatcher*`): the message goes to that one consumer if it has
//! permits and its connection keeps up, and is dropped otherwise — never queued or retried.

use strata_proto::pulsar::KeySharedMode;
use strata_proto::pulsar::command_subscribe::SubType;

use super::member::Member;

/// Key_Shared hash slots (Pulsar's range size, as the persistent dispatcher's).
pub const HASH_SLOTS: u32 = 65536;

/// Whether `m` can take a message now.
fn ready(m: &Member) -> bool {
    m.permits > 0 && !m.out.is_congested()
}

/// The consumer that should get a message of Key_Shared hash `slot`, whether or not it can
/// take it now. `next` is the Shared round-robin cursor. `members` are in (priority, arrival)
/// order. None when the chosen consumer cannot take it (the message is dropped).
pub fn choose(
    sub_type: SubType,
    partition: i32,
    members: &[Member],
    next: &mut usize,
    slot: u32,
) -> Option<usize> {
    if members.is_empty() {
        return None;
    }
    let chosen = match sub_type {
        SubType::Exclusive => Some(0),
        SubType::Failover => Some(failover_active(partition, members)),
        SubType::Shared => return shared(members, next),
        SubType::KeyShared => key_shared(members, slot),
    }?;
    ready(&members[chosen]).then_some(chosen)
}

/// The active consumer of a Failover subscription: among the consumers of the highest
/// priority (lowest level), sorted by name, the one at `partition % n` (Pulsar spreads the
/// partitions of a partitioned topic over the consumers this way).
pub fn failover_active(partition: i32, members: &[Member]) -> usize {
    let top = members.iter().map(|m| m.priority).min().unwrap_or(0);
    let mut candidates: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].priority == top)
        .collect();
    candidates.sort_by(|&a, &b| members[a].name.cmp(&members[b].name));
    let idx = (partition.max(0) as usize) % candidates.len().max(1);
    candidates.get(idx).copied().unwrap_or(0)
}

/// Shared: round robin over the consumers of the highest priority that can take a message,
/// then over the lower ones.
fn shared(members: &[Member], next: &mut usize) -> Option<usize> {
    let n = members.len();
    let mut levels: Vec<i32> = members.iter().map(|m| m.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    for level in levels {
        for step in 0..n {
            let i = (*next + step) % n;
            if members[i].priority == level && ready(&members[i]) {
                *next = (i + 1) % n;
                return Some(i);
            }
        }
    }
    None
}

/// Key_Shared: a sticky consumer whose range holds `slot`, else the auto-split share of the
/// hash space (slots divided evenly over the consumers in arrival order).
fn key_shared(members: &[Member], slot: u32) -> Option<usize> {
    let sticky = members.iter().position(|m| {
        m.key_shared.as_ref().is_some_and(|k| {
            k.mode == KeySharedMode::Sticky
                && k.ranges
                    .iter()
                    .any(|&(s, e)| (s as i64) <= slot as i64 && slot as i64 <= e as i64)
        })
    });
    if sticky.is_some() {
        return sticky;
    }
    let auto: Vec<usize> = (0..members.len())
        .filter(|&i| {
            members[i]
                .key_shared
                .as_ref()
                .is_none_or(|k| k.mode != KeySharedMode::Sticky)
        })
        .collect();
    if auto.is_empty() {
        return None;
    }
    let idx = (slot as usize * auto.len()) / HASH_SLOTS as usize;
    auto.get(idx.min(auto.len() - 1)).copied()
}
