//! A customer's "email me this transcript": which outbox mail an ask is, and when a waiting
//! transcript mail may be sent. Pure.
//!
//! One mail per (conversation, address): asking again for the same address (in any case)
//! is the mail already asked for, never a second one; a corrected address gets a mail of
//! its own, up to [`MAX_ADDRESSES`] addresses per conversation (so a token or a chat cannot
//! be used to send the desk's mail to any number of strangers). Each mail takes a numbered
//! slot in its id ([`mail_id`]): the store's unique id makes two racing asks for different
//! addresses take different slots, and two for one address one mail.
//!
//! The mail is made from the archive when it is sent, once the chat is archived closed:
//! asked during the chat, it waits for the end (a transcript mailed mid-chat would miss the
//! rest, and there is one mail per address), looking again at growing intervals.

/// Addresses one conversation's transcript may be mailed to.
pub const MAX_ADDRESSES: u32 = 3;
/// How long a transcript mail waits for its chat to be archived closed before it is given
/// up (a chat runs for hours at most; a node lost mid-chat is closed by the reaper).
pub const WAIT_FOR_END_MS: i64 = 24 * 3600 * 1000;
/// How long a mail whose conversation is not in the archive waits for it: the opening may
/// be on its way; after this, the conversation was erased (or never archived).
pub const WAIT_FOR_OPENING_MS: i64 = 60 * 1000;
const LOOK_AGAIN_MIN_MS: i64 = 500;
const LOOK_AGAIN_MAX_MS: i64 = 30 * 1000;

/// What an ask for `address` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// This address was asked for already: the mail in `slot` (nothing new is written).
    Again { slot: u32 },
    /// A new mail, in the free `slot`.
    New { slot: u32 },
    /// [`MAX_ADDRESSES`] addresses were asked for already.
    TooMany,
}

/// What an ask for `address` is, given the (slot, address) of the conversation's
/// transcript mails already stored.
pub fn decide<'a>(stored: impl IntoIterator<Item = (u32, &'a str)>, address: &str) -> Ask {
    let wanted = address.trim().to_lowercase();
    let mut taken = Vec::new();
    for (slot, to) in stored {
        if to.trim().to_lowercase() == wanted {
            return Ask::Again { slot };
        }
        taken.push(slot);
    }
    match (1..=MAX_ADDRESSES).find(|slot| !taken.contains(slot)) {
        Some(slot) => Ask::New { slot },
        None => Ask::TooMany,
    }
}

/// The outbox id of conversation `conversation`'s transcript mail in `slot`.
pub fn mail_id(conversation: &str, slot: u32) -> String {
    format!("{}{slot}", id_prefix(conversation))
}

/// What the ids of `conversation`'s transcript mails start with.
pub fn id_prefix(conversation: &str) -> String {
    format!("transcript:{conversation}:")
}

/// The slot in a transcript mail's id, when it is one of `conversation`'s.
pub fn slot_of(id: &str, conversation: &str) -> Option<u32> {
    id.strip_prefix(&id_prefix(conversation))?.parse().ok()
}

/// What the outbox worker does with a transcript mail it claimed at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenToSend {
    /// The chat is archived closed: make it and send it.
    Now,
    /// Look again at this instant (not a failed attempt).
    LookAgainAt(i64),
    /// Never: what it waits for did not come in time.
    GiveUp,
}

/// Whether a transcript mail asked at `asked_at` goes now: `archived` is whether its
/// conversation's opening is in the archive, `closed` whether its closing is.
pub fn when_to_send(archived: bool, closed: bool, asked_at: i64, now: i64) -> WhenToSend {
    let age = now.saturating_sub(asked_at).max(0);
    match (archived, closed) {
        (true, true) => WhenToSend::Now,
        (false, _) if age >= WAIT_FOR_OPENING_MS => WhenToSend::GiveUp,
        (true, false) if age >= WAIT_FOR_END_MS => WhenToSend::GiveUp,
        // Soon after the ask (an ask after the chat: its closing is on its way), rarely later.
        _ => WhenToSend::LookAgainAt(now + (age / 4).clamp(LOOK_AGAIN_MIN_MS, LOOK_AGAIN_MAX_MS)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_same_address_is_the_same_mail_and_a_fourth_address_is_refused() {
        assert_eq!(decide([], "a@x.org"), Ask::New { slot: 1 });
        assert_eq!(decide([(1, "a@x.org")], " A@X.org "), Ask::Again { slot: 1 });
        assert_eq!(decide([(1, "a@x.org")], "b@x.org"), Ask::New { slot: 2 });
        assert_eq!(decide([(2, "a@x.org")], "b@x.org"), Ask::New { slot: 1 });
        let three = [(1, "a@x.org"), (2, "b@x.org"), (3, "c@x.org")];
        assert_eq!(decide(three, "d@x.org"), Ask::TooMany);
        assert_eq!(decide(three, "c@x.org"), Ask::Again { slot: 3 });
    }

    #[test]
    fn ids_name_their_conversation_and_slot() {
        let id = mail_id("c1", 2);
        assert_eq!(slot_of(&id, "c1"), Some(2));
        assert_eq!(slot_of(&id, "c"), None);
        assert_eq!(slot_of(&mail_id("c10", 2), "c1"), None);
    }

    #[test]
    fn a_mail_waits_for_the_end_and_gives_up_in_time() {
        assert_eq!(when_to_send(true, true, 0, 1), WhenToSend::Now);
        assert_eq!(when_to_send(true, false, 0, 1_000), WhenToSend::LookAgainAt(1_500));
        assert_eq!(
            when_to_send(true, false, 0, 3_600_000),
            WhenToSend::LookAgainAt(3_630_000)
        );
        assert_eq!(when_to_send(true, false, 0, WAIT_FOR_END_MS), WhenToSend::GiveUp);
        assert_eq!(when_to_send(false, false, 0, 1_000), WhenToSend::LookAgainAt(1_500));
        assert_eq!(when_to_send(false, false, 0, WAIT_FOR_OPENING_MS), WhenToSend::GiveUp);
        // Even a clock gone backwards looks again later, never now.
        assert!(matches!(when_to_send(true, false, 10_000, 0), WhenToSend::LookAgainAt(t) if t > 0));
    }

    proptest! {
        /// Whatever was asked before, an ask never takes a slot in use, never goes past
        /// the cap, and an address asked before is always that mail again.
        #[test]
        fn slots_stay_unique_and_capped(addresses in prop::collection::vec("[a-c]@x\\.org|[A-C]@X\\.ORG", 1..12)) {
            let mut stored: Vec<(u32, String)> = vec![];
            for address in &addresses {
                let before = stored.clone();
                match decide(stored.iter().map(|(s, a)| (*s, a.as_str())), address) {
                    Ask::New { slot } => {
                        prop_assert!((1..=MAX_ADDRESSES).contains(&slot));
                        prop_assert!(before.iter().all(|(s, a)| *s != slot && !a.eq_ignore_ascii_case(address)));
                        stored.push((slot, address.clone()));
                    }
                    Ask::Again { slot } => {
                        prop_assert!(before.iter().any(|(s, a)| *s == slot && a.eq_ignore_ascii_case(address)));
                    }
                    Ask::TooMany => {
                        prop_assert_eq!(before.len() as u32, MAX_ADDRESSES);
                        prop_assert!(before.iter().all(|(_, a)| !a.eq_ignore_ascii_case(address)));
                    }
                }
            }
        }
    }
}
