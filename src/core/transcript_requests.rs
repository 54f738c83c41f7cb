//! A customer's "email me this transcript": which outbox mail an ask is, and when a waiting
//! transcript mail may be sent. Pure.
//!
//! One mail per (conversation, address, live session): asking again for the same address
//! (in any case) is the mail already asked for — waiting, or sent with nothing said since —
//! never a second one; once the conversation went on after that mail was sent (it was
//! reopened and the customer or agent wrote), an ask is a new mail of the whole
//! conversation ([`current`]). A corrected address gets a mail of its own, up to
//! [`MAX_ADDRESSES`] addresses per conversation (so a token or a chat cannot be used to send
//! the desk's mail to any number of strangers), and [`MAX_MAILS`] mails in all. Each mail
//! takes a numbered slot in its id ([`mail_id`]): the store's unique id makes two racing
//! asks take different slots, and two for one address one mail.
//!
//! The mail is made from the archive when it is sent, once the chat is archived closed:
//! asked during the chat, it waits for the end (a transcript mailed mid-chat would miss the
//! rest), looking again at growing intervals. A continued conversation keeps its earlier
//! closing while it runs again: the mail waits for a closing after its ask, unless nothing
//! was said after the closing there is ([`ended_for`]).

/// Addresses one conversation's transcript may be mailed to.
pub const MAX_ADDRESSES: u32 = 3;
/// Transcript mails of one conversation in all (each again for an address only after the
/// conversation went on): a conversation reopened this often is one a person reads in the
/// console, and the desk's mail is not a customer's to send without end.
pub const MAX_MAILS: u32 = 12;
/// Lines stamped this little after a closing count as before it: two nodes' clocks may
/// be this far apart, and a customer comes back later than this after an end.
const CLOCKS_APART_MS: i64 = 100;
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

/// A transcript mail of the conversation already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    pub slot: u32,
    pub to: &'a str,
    /// It holds (or, waiting, will hold) everything said so far ([`current`]).
    pub current: bool,
}

/// Whether a mail sent at `sent_at` (`None`: not sent yet, so made at the end) holds the
/// conversation whose last line was at `last_line_at`.
pub fn current(sent_at: Option<i64>, last_line_at: Option<i64>) -> bool {
    match (sent_at, last_line_at) {
        (Some(sent), Some(line)) => line <= sent,
        _ => true,
    }
}

/// What an ask for `address` is, given the conversation's transcript mails already stored.
pub fn decide<'a>(stored: impl IntoIterator<Item = Stored<'a>>, address: &str) -> Ask {
    let wanted = address.trim().to_lowercase();
    let mut taken = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    let mut again = None;
    for mail in stored {
        let to = mail.to.trim().to_lowercase();
        if to == wanted && mail.current {
            again = Some(mail.slot);
        }
        if !addresses.contains(&to) {
            addresses.push(to);
        }
        taken.push(mail.slot);
    }
    if let Some(slot) = again {
        return Ask::Again { slot };
    }
    let new_address = !addresses.contains(&wanted);
    if new_address && addresses.len() as u32 >= MAX_ADDRESSES {
        return Ask::TooMany;
    }
    match (1..=MAX_MAILS).find(|slot| !taken.contains(slot)) {
        Some(slot) => Ask::New { slot },
        None => Ask::TooMany,
    }
}

/// Whether a mail asked at `asked_at` finds its chat ended: a closing after the ask, or
/// one with nothing said after it (a conversation continued after an earlier end keeps
/// that closing until it ends again).
pub fn ended_for(asked_at: i64, closed_at: Option<i64>, last_line_at: Option<i64>) -> bool {
    match closed_at {
        None => false,
        Some(closed) => closed >= asked_at || last_line_at.is_none_or(|line| line <= closed + CLOCKS_APART_MS),
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
        let at = |slot, to| Stored {
            slot,
            to,
            current: true,
        };
        assert_eq!(decide([], "a@x.org"), Ask::New { slot: 1 });
        assert_eq!(decide([at(1, "a@x.org")], " A@X.org "), Ask::Again { slot: 1 });
        assert_eq!(decide([at(1, "a@x.org")], "b@x.org"), Ask::New { slot: 2 });
        assert_eq!(decide([at(2, "a@x.org")], "b@x.org"), Ask::New { slot: 1 });
        let three = [at(1, "a@x.org"), at(2, "b@x.org"), at(3, "c@x.org")];
        assert_eq!(decide(three, "d@x.org"), Ask::TooMany);
        assert_eq!(decide(three, "c@x.org"), Ask::Again { slot: 3 });
    }

    #[test]
    fn after_a_reopen_the_same_address_gets_the_whole_conversation_again() {
        // Sent at 100; the conversation went on at 150: a new mail, in a free slot.
        assert!(current(None, Some(150)), "waiting: made at the end");
        assert!(current(Some(100), Some(90)));
        assert!(!current(Some(100), Some(150)));
        let sent = Stored {
            slot: 1,
            to: "a@x.org",
            current: false,
        };
        assert_eq!(decide([sent], "a@x.org"), Ask::New { slot: 2 });
        let again = Stored {
            slot: 2,
            to: "a@x.org",
            current: true,
        };
        assert_eq!(decide([sent, again], "A@x.org"), Ask::Again { slot: 2 });
        // Mails again to one address count one address; the mails in all are capped.
        let three = [
            sent,
            Stored {
                slot: 2,
                to: "b@x.org",
                current: true,
            },
            Stored {
                slot: 3,
                to: "c@x.org",
                current: true,
            },
        ];
        assert_eq!(decide(three, "a@x.org"), Ask::New { slot: 4 });
        let full: Vec<_> = (1..=MAX_MAILS)
            .map(|slot| Stored {
                slot,
                to: "a@x.org",
                current: false,
            })
            .collect();
        assert_eq!(decide(full, "a@x.org"), Ask::TooMany);
    }

    #[test]
    fn a_mail_asked_in_a_continued_chat_waits_for_its_new_end() {
        // Ended at 100; asked at 200 with nothing said since: it goes.
        assert!(ended_for(200, Some(100), Some(90)));
        // Continued, lines at 300, asked at 400: the closing of 100 is not its end.
        assert!(!ended_for(400, Some(100), Some(300)));
        // Ended again at 500.
        assert!(ended_for(400, Some(500), Some(450)));
        assert!(!ended_for(400, None, Some(300)));
        // A line stamped a moment after the closing by another node's clock.
        assert!(ended_for(200, Some(100), Some(150)));
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
                match decide(stored.iter().map(|(s, a)| Stored { slot: *s, to: a.as_str(), current: true }), address) {
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
