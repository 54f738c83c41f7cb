//! Tests of `presence`.

use super::*;
use BuddyDecision as D;

const ANN: BuddyId = BuddyId(1);
const BOB: BuddyId = BuddyId(2);
const CAT: BuddyId = BuddyId(3);
const DAN: BuddyId = BuddyId(4);

/// Runs an event that must succeed and returns what it decided.
fn ok(
    p: &mut Presence,
    f: impl FnOnce(&mut Presence, &mut Vec<BuddyDecision>) -> Result<(), BuddyError>,
) -> Vec<BuddyDecision> {
    let mut out = Vec::new();
    f(p, &mut out).expect("event should succeed");
    out
}

/// Runs an event that must fail, and checks it changed and pushed nothing.
fn err(
    p: &mut Presence,
    f: impl FnOnce(&mut Presence, &mut Vec<BuddyDecision>) -> Result<(), BuddyError>,
) -> BuddyError {
    let before = p.clone();
    let mut out = Vec::new();
    let e = f(p, &mut out).expect_err("event should fail");
    assert!(out.is_empty(), "failed event pushed {out:?}");
    assert_eq!(*p, before, "failed event changed state");
    e
}

fn with(ids: &[BuddyId]) -> Presence {
    let mut p = Presence::new();
    for &id in ids {
        ok(&mut p, |p, o| p.connect(id, &format!("user{}", id.0), o));
    }
    p
}

/// What `pick` takes from the first decision in `out` it takes anything from.
fn first<T>(out: &[BuddyDecision], pick: impl FnMut(&BuddyDecision) -> Option<T>) -> T {
    out.iter().find_map(pick).expect("no such decision")
}

fn inv_id(out: &[BuddyDecision]) -> InvitationId {
    first(out, |d| match d {
        D::Invited { invitation, .. } => Some(*invitation),
        _ => None,
    })
}

fn chat_id(out: &[BuddyDecision]) -> BuddyChatId {
    first(out, |d| match d {
        D::ChatStarted { chat, .. } => Some(*chat),
        _ => None,
    })
}

/// `from` invites `to` (which must succeed): the invitation.
fn invite(p: &mut Presence, from: BuddyId, to: BuddyId) -> InvitationId {
    inv_id(&ok(p, |p, o| p.invite(from, to, o)))
}

/// `who`'s only connection drops and their grace period runs out: what that decided.
fn leaves(p: &mut Presence, who: BuddyId) -> Vec<BuddyDecision> {
    let e = epoch(&ok(p, |p, o| p.disconnect(who, o)));
    ok(p, |p, o| p.grace_expired(who, e, o))
}

fn epoch(out: &[BuddyDecision]) -> u64 {
    match out {
        [D::LeaveGraceStarted { epoch, .. }] => *epoch,
        other => panic!("expected LeaveGraceStarted, got {other:?}"),
    }
}

fn closed_d(inv: InvitationId, from: BuddyId, to: BuddyId, reason: CloseReason) -> BuddyDecision {
    D::InvitationClosed {
        invitation: inv,
        from,
        to,
        reason,
    }
}

/// Chat `chat` between ANN and BOB ended by `ended_by`.
fn ended(chat: BuddyChatId, ended_by: BuddyId, reason: ChatEndReason) -> BuddyDecision {
    D::ChatEnded {
        chat,
        a: ANN,
        b: BOB,
        ended_by,
        reason,
    }
}

fn st(who: BuddyId, status: Status) -> BuddyDecision {
    D::StatusChanged { who, status }
}

// ---- names ----

#[test]
fn validate_name_trims_and_counts_chars() {
    assert_eq!(validate_name("  Ann \t"), Ok("Ann".to_string()));
    assert_eq!(validate_name(""), Err(BuddyError::InvalidName));
    assert_eq!(validate_name("   "), Err(BuddyError::InvalidName));
    assert_eq!(validate_name(&"a".repeat(100)), Ok("a".repeat(100)));
    assert_eq!(validate_name(&"a".repeat(101)), Err(BuddyError::InvalidName));
    // 100 two-byte chars are 200 bytes yet still a valid name.
    assert_eq!(validate_name(&"é".repeat(100)), Ok("é".repeat(100)));
    assert_eq!(validate_name(&format!("  {}  ", "é".repeat(100))), Ok("é".repeat(100)));
    assert_eq!(validate_name(&"é".repeat(101)), Err(BuddyError::InvalidName));
}

#[test]
fn connect_rejects_invalid_name() {
    let mut p = with(&[ANN]);
    assert_eq!(err(&mut p, |p, o| p.connect(BOB, "  ", o)), BuddyError::InvalidName);
    assert!(!p.is_online(BOB));
}

// ---- connections and grace ----

#[test]
fn joining_is_announced_and_starts_available() {
    let mut p = Presence::new();
    assert_eq!(
        ok(&mut p, |p, o| p.connect(ANN, " Ann ", o)),
        vec![D::Joined {
            who: ANN,
            name: "Ann".into()
        }]
    );
    assert_eq!(
        ok(&mut p, |p, o| p.connect(BOB, "Ann", o)),
        vec![D::Joined {
            who: BOB,
            name: "Ann".into()
        }]
    );
    let online: Vec<_> = p.online().collect();
    assert_eq!(
        online,
        vec![(ANN, "Ann", Status::Available), (BOB, "Ann", Status::Available)]
    );
    assert_eq!(p.status(ANN), Some(Status::Available));
    assert_eq!(p.status(CAT), None);
    assert!(p.is_online(ANN) && !p.is_online(CAT));
    assert_eq!(p.connections(ANN), 1);
    assert_eq!(p.connections(CAT), 0);
}

#[test]
fn several_connections_of_one_person() {
    let mut p = with(&[ANN]);
    assert!(ok(&mut p, |p, o| p.connect(ANN, "Other name", o)).is_empty());
    assert_eq!(p.connections(ANN), 2);
    assert_eq!(p.name(ANN), Some("user1"), "a second tab does not rename");
    assert!(
        ok(&mut p, |p, o| p.disconnect(ANN, o)).is_empty(),
        "closing one of two tabs is silent"
    );
    assert_eq!(p.connections(ANN), 1);
    let out = ok(&mut p, |p, o| p.disconnect(ANN, o));
    assert!(matches!(out[..], [D::LeaveGraceStarted { who: ANN, .. }]));
    assert!(p.is_online(ANN), "still online during grace");
    assert_eq!(p.connections(ANN), 0);
}

#[test]
fn disconnect_errors() {
    let mut p = with(&[ANN]);
    assert_eq!(err(&mut p, |p, o| p.disconnect(BOB, o)), BuddyError::NotOnline);
    ok(&mut p, |p, o| p.disconnect(ANN, o));
    assert_eq!(err(&mut p, |p, o| p.disconnect(ANN, o)), BuddyError::NotConnected);
}

#[test]
fn grace_expiry_makes_the_person_leave() {
    let mut p = with(&[ANN, BOB]);
    let e = epoch(&ok(&mut p, |p, o| p.disconnect(ANN, o)));
    assert_eq!(
        ok(&mut p, |p, o| p.grace_expired(ANN, e, o)),
        vec![D::Left { who: ANN }]
    );
    assert!(!p.is_online(ANN));
    assert_eq!(p.status(ANN), None);
    // A duplicate timer, or one for a stranger, is harmless.
    assert!(ok(&mut p, |p, o| p.grace_expired(ANN, e, o)).is_empty());
    assert!(ok(&mut p, |p, o| p.grace_expired(DAN, 1, o)).is_empty());
    // Coming back is a fresh join.
    assert_eq!(
        ok(&mut p, |p, o| p.connect(ANN, "Ann", o)),
        vec![D::Joined {
            who: ANN,
            name: "Ann".into()
        }]
    );
}

#[test]
fn reconnect_within_grace_cancels_the_leave() {
    let mut p = with(&[ANN, BOB]);
    let e = epoch(&ok(&mut p, |p, o| p.disconnect(ANN, o)));
    assert!(
        ok(&mut p, |p, o| p.connect(ANN, "Ann", o)).is_empty(),
        "a reload announces nothing"
    );
    let before = p.clone();
    assert!(ok(&mut p, |p, o| p.grace_expired(ANN, e, o)).is_empty());
    assert_eq!(p, before);
    assert!(p.is_online(ANN));
}

#[test]
fn stale_epoch_is_ignored() {
    let mut p = with(&[ANN, BOB]);
    let e1 = epoch(&ok(&mut p, |p, o| p.disconnect(ANN, o)));
    ok(&mut p, |p, o| p.connect(ANN, "Ann", o));
    let e2 = epoch(&ok(&mut p, |p, o| p.disconnect(ANN, o)));
    assert_ne!(e1, e2);
    assert!(ok(&mut p, |p, o| p.grace_expired(ANN, e1, o)).is_empty());
    assert!(p.is_online(ANN));
    assert_eq!(
        ok(&mut p, |p, o| p.grace_expired(ANN, e2, o)),
        vec![D::Left { who: ANN }]
    );
}

#[test]
fn chat_survives_a_reload() {
    let mut p = with(&[ANN, BOB]);
    let i = invite(&mut p, ANN, BOB);
    let c = chat_id(&ok(&mut p, |p, o| p.accept(BOB, i, o)));
    let e = epoch(&ok(&mut p, |p, o| p.disconnect(ANN, o)));
    assert_eq!(p.chat_of(ANN), Some((c, BOB)));
    ok(&mut p, |p, o| p.connect(ANN, "Ann", o));
    assert!(ok(&mut p, |p, o| p.grace_expired(ANN, e, o)).is_empty());
    assert_eq!(p.chat_of(BOB), Some((c, ANN)));
}

// ---- invitations ----

#[test]
fn invite_makes_inviter_busy_and_invitee_may_hold_several() {
    let mut p = with(&[ANN, BOB, CAT]);
    let out = ok(&mut p, |p, o| p.invite(ANN, CAT, o));
    let i1 = inv_id(&out);
    assert_eq!(
        out,
        vec![
            D::Invited {
                invitation: i1,
                from: ANN,
                to: CAT
            },
            st(ANN, Status::Busy)
        ]
    );
    let out = ok(&mut p, |p, o| p.invite(BOB, CAT, o));
    let i2 = inv_id(&out);
    assert_ne!(i1, i2);
    assert_eq!(p.status(ANN), Some(Status::Busy));
    assert_eq!(
        p.status(CAT),
        Some(Status::Available),
        "holding invitations is not busy"
    );
    let mine = p.invitations_of(CAT);
    assert_eq!(
        mine,
        vec![
            Invitation {
                id: i1,
                from: ANN,
                to: CAT
            },
            Invitation {
                id: i2,
                from: BOB,
                to: CAT
            }
        ]
    );
    assert_eq!(
        p.invitations_of(ANN),
        vec![Invitation {
            id: i1,
            from: ANN,
            to: CAT
        }]
    );
    assert_eq!(
        p.invitation(i2),
        Some(Invitation {
            id: i2,
            from: BOB,
            to: CAT
        })
    );
}

#[test]
fn invite_errors() {
    let mut p = with(&[ANN, BOB, CAT, DAN]);
    assert_eq!(err(&mut p, |p, o| p.invite(BuddyId(99), ANN, o)), BuddyError::NotOnline);
    assert_eq!(err(&mut p, |p, o| p.invite(ANN, ANN, o)), BuddyError::SelfInvite);
    assert_eq!(
        err(&mut p, |p, o| p.invite(ANN, BuddyId(99), o)),
        BuddyError::TargetNotOnline
    );
    ok(&mut p, |p, o| p.invite(ANN, BOB, o));
    assert_eq!(
        err(&mut p, |p, o| p.invite(ANN, CAT, o)),
        BuddyError::NotAvailable,
        "one sent invitation at a time"
    );
    assert_eq!(
        err(&mut p, |p, o| p.invite(CAT, ANN, o)),
        BuddyError::TargetNotAvailable,
        "inviter is busy"
    );
    let i = invite(&mut p, CAT, DAN);
    ok(&mut p, |p, o| p.accept(DAN, i, o));
    assert_eq!(
        err(&mut p, |p, o| p.invite(BOB, DAN, o)),
        BuddyError::TargetNotAvailable,
        "in a chat"
    );
    assert_eq!(
        err(&mut p, |p, o| p.invite(DAN, BOB, o)),
        BuddyError::NotAvailable,
        "in a chat"
    );
}

#[test]
fn invite_by_a_holder_declines_what_they_hold() {
    let mut p = with(&[ANN, BOB, CAT]);
    let i1 = invite(&mut p, ANN, BOB);
    let out = ok(&mut p, |p, o| p.invite(BOB, CAT, o));
    let i2 = inv_id(&out);
    assert_eq!(
        out,
        vec![
            closed_d(i1, ANN, BOB, CloseReason::Declined),
            st(ANN, Status::Available),
            D::Invited {
                invitation: i2,
                from: BOB,
                to: CAT
            },
            st(BOB, Status::Busy),
        ]
    );
    assert_eq!(p.invitation(i1), None);
}

#[test]
fn cancel_only_by_inviter() {
    let mut p = with(&[ANN, BOB, CAT]);
    let i = invite(&mut p, ANN, BOB);
    assert_eq!(err(&mut p, |p, o| p.cancel(BOB, i, o)), BuddyError::NotYourInvitation);
    assert_eq!(err(&mut p, |p, o| p.cancel(CAT, i, o)), BuddyError::NotYourInvitation);
    assert_eq!(err(&mut p, |p, o| p.cancel(BuddyId(99), i, o)), BuddyError::NotOnline);
    assert_eq!(
        err(&mut p, |p, o| p.cancel(ANN, InvitationId(999), o)),
        BuddyError::UnknownInvitation
    );
    let out = ok(&mut p, |p, o| p.cancel(ANN, i, o));
    assert_eq!(
        out,
        vec![
            closed_d(i, ANN, BOB, CloseReason::Cancelled),
            st(ANN, Status::Available)
        ]
    );
    assert!(p.invitations_of(ANN).is_empty() && p.invitations_of(BOB).is_empty());
    assert_eq!(err(&mut p, |p, o| p.cancel(ANN, i, o)), BuddyError::UnknownInvitation);
}

#[test]
fn decline_only_by_invitee() {
    let mut p = with(&[ANN, BOB]);
    let i = invite(&mut p, ANN, BOB);
    assert_eq!(err(&mut p, |p, o| p.decline(ANN, i, o)), BuddyError::NotYourInvitation);
    let out = ok(&mut p, |p, o| p.decline(BOB, i, o));
    assert_eq!(
        out,
        vec![closed_d(i, ANN, BOB, CloseReason::Declined), st(ANN, Status::Available)]
    );
    assert_eq!(p.status(ANN), Some(Status::Available));
    assert!(p.invitations_of(BOB).is_empty());
}

#[test]
fn accept_declines_the_others_and_starts_a_chat() {
    let mut p = with(&[ANN, BOB, CAT, DAN]);
    let i1 = invite(&mut p, ANN, DAN);
    let i2 = invite(&mut p, BOB, DAN);
    let i3 = invite(&mut p, CAT, DAN);
    assert_eq!(err(&mut p, |p, o| p.accept(BOB, i2, o)), BuddyError::NotYourInvitation);
    let out = ok(&mut p, |p, o| p.accept(DAN, i2, o));
    let c = chat_id(&out);
    assert_eq!(
        out,
        vec![
            closed_d(i1, ANN, DAN, CloseReason::Declined),
            st(ANN, Status::Available),
            closed_d(i3, CAT, DAN, CloseReason::Declined),
            st(CAT, Status::Available),
            closed_d(i2, BOB, DAN, CloseReason::Accepted),
            D::ChatStarted {
                chat: c,
                a: BOB,
                b: DAN
            },
            // BOB was already busy: no flicker, no StatusChanged for BOB.
            st(DAN, Status::Busy),
        ]
    );
    assert_eq!(p.chat_of(BOB), Some((c, DAN)));
    assert_eq!(p.chat_of(DAN), Some((c, BOB)));
    assert_eq!(p.chat_members(c), Some((BOB, DAN)));
    assert_eq!(p.status(BOB), Some(Status::Busy));
    assert_eq!(p.status(DAN), Some(Status::Busy));
    assert!(p.invitations_of(DAN).is_empty());
    assert_eq!(err(&mut p, |p, o| p.accept(DAN, i1, o)), BuddyError::UnknownInvitation);
}

// ---- chats ----

#[test]
fn end_chat_by_either_member() {
    for ender in [ANN, BOB] {
        let mut p = with(&[ANN, BOB, CAT]);
        let i = invite(&mut p, ANN, BOB);
        let c = chat_id(&ok(&mut p, |p, o| p.accept(BOB, i, o)));
        assert_eq!(err(&mut p, |p, o| p.end_chat(CAT, c, o)), BuddyError::NotInChat);
        assert_eq!(
            err(&mut p, |p, o| p.end_chat(ender, BuddyChatId(77), o)),
            BuddyError::UnknownChat
        );
        assert_eq!(err(&mut p, |p, o| p.end_chat(BuddyId(99), c, o)), BuddyError::NotOnline);
        let out = ok(&mut p, |p, o| p.end_chat(ender, c, o));
        assert_eq!(
            out,
            vec![
                ended(c, ender, ChatEndReason::EndedBy),
                st(ANN, Status::Available),
                st(BOB, Status::Available),
            ]
        );
        assert_eq!(p.chat_of(ANN), None);
        assert_eq!(p.chat_members(c), None);
    }
}

// ---- leaving ----

#[test]
fn leave_withdraws_sent_invitation() {
    let mut p = with(&[ANN, BOB]);
    let i = invite(&mut p, ANN, BOB);
    let out = leaves(&mut p, ANN);
    assert_eq!(
        out,
        vec![closed_d(i, ANN, BOB, CloseReason::InviterLeft), D::Left { who: ANN }]
    );
    assert!(p.invitations_of(BOB).is_empty());
}

#[test]
fn leave_declines_held_invitations() {
    let mut p = with(&[ANN, BOB, CAT]);
    let i1 = invite(&mut p, ANN, CAT);
    let i2 = invite(&mut p, BOB, CAT);
    let out = leaves(&mut p, CAT);
    assert_eq!(
        out,
        vec![
            closed_d(i1, ANN, CAT, CloseReason::InviteeLeft),
            st(ANN, Status::Available),
            closed_d(i2, BOB, CAT, CloseReason::InviteeLeft),
            st(BOB, Status::Available),
            D::Left { who: CAT },
        ]
    );
}

#[test]
fn leave_ends_the_chat() {
    let mut p = with(&[ANN, BOB]);
    let i = invite(&mut p, ANN, BOB);
    let c = chat_id(&ok(&mut p, |p, o| p.accept(BOB, i, o)));
    let out = leaves(&mut p, BOB);
    assert_eq!(
        out,
        vec![
            ended(c, BOB, ChatEndReason::Left),
            st(ANN, Status::Available),
            D::Left { who: BOB },
        ]
    );
    assert_eq!(p.chat_of(ANN), None);
    assert_eq!(p.status(ANN), Some(Status::Available));
}

// ---- errors ----

#[test]
fn error_codes_are_distinct_snake_case_and_displayed() {
    use strum::IntoEnumIterator;
    // Every variant, a new one included without a change here.
    let all: Vec<BuddyError> = BuddyError::iter().collect();
    let codes: BTreeSet<&str> = all.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), all.len());
    for e in &all {
        assert!(
            e.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            e.code()
        );
        let text = e.to_string();
        assert!(text.ends_with('.') && text.len() > 10, "{text}");
    }
    assert_eq!(BuddyError::NotAvailable.code(), "not_available");
}

// ---- properties ----

use proptest::prelude::*;

const PEOPLE: u64 = 6; // id 5 rarely connects, so unknown people show up too

#[derive(Debug, Clone)]
enum Op {
    Connect(u64, usize),
    Disconnect(u64),
    Grace(u64, bool),
    Invite(u64, u64),
    Cancel(u64, Option<usize>),
    Decline(u64, Option<usize>),
    Accept(u64, Option<usize>),
    EndChat(u64, Option<usize>),
}

const NAMES: [&str; 4] = ["ann", "  same  ", "", "same"];

fn op() -> impl Strategy<Value = Op> {
    let who = 0..PEOPLE;
    let pick = proptest::option::weighted(0.85, 0..8usize);
    prop_oneof![
        3 => (0..PEOPLE - 1, 0..NAMES.len()).prop_map(|(w, n)| Op::Connect(w, n)),
        1 => (PEOPLE - 1..PEOPLE, 0..NAMES.len()).prop_map(|(w, n)| Op::Connect(w, n)),
        2 => who.clone().prop_map(Op::Disconnect),
        2 => (who.clone(), proptest::bool::weighted(0.3)).prop_map(|(w, s)| Op::Grace(w, s)),
        4 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Invite(a, b)),
        1 => (who.clone(), pick.clone()).prop_map(|(w, i)| Op::Cancel(w, i)),
        1 => (who.clone(), pick.clone()).prop_map(|(w, i)| Op::Decline(w, i)),
        3 => (who.clone(), pick.clone()).prop_map(|(w, i)| Op::Accept(w, i)),
        2 => (who, pick).prop_map(|(w, i)| Op::EndChat(w, i)),
    ]
}

/// What clients would believe after hearing every decision so far; it
/// must always agree with the queries, which proves the announcements
/// are complete and never redundant.
#[derive(Default, Debug)]
struct Mirror {
    online: BTreeMap<BuddyId, (String, Status)>,
    invitations: BTreeMap<InvitationId, (BuddyId, BuddyId)>,
    chats: BTreeMap<BuddyChatId, (BuddyId, BuddyId)>,
    epochs: BTreeMap<BuddyId, Vec<u64>>,
}

impl Mirror {
    fn apply(&mut self, d: &BuddyDecision) {
        match d {
            D::Joined { who, name } => {
                assert!(
                    self.online.insert(*who, (name.clone(), Status::Available)).is_none(),
                    "double join"
                );
            }
            D::Left { who } => {
                assert!(self.online.remove(who).is_some(), "left while not online");
            }
            D::StatusChanged { who, status } => {
                let entry = self.online.get_mut(who).expect("status of someone offline");
                assert_ne!(entry.1, *status, "redundant StatusChanged");
                entry.1 = *status;
            }
            D::LeaveGraceStarted { who, epoch } => self.epochs.entry(*who).or_default().push(*epoch),
            D::Invited { invitation, from, to } => {
                assert!(
                    self.invitations.insert(*invitation, (*from, *to)).is_none(),
                    "reused invitation id"
                );
            }
            D::InvitationClosed {
                invitation, from, to, ..
            } => {
                assert_eq!(self.invitations.remove(invitation), Some((*from, *to)));
            }
            D::ChatStarted { chat, a, b } => {
                assert!(self.chats.insert(*chat, (*a, *b)).is_none(), "reused chat id");
            }
            D::ChatEnded {
                chat, a, b, ended_by, ..
            } => {
                assert!(ended_by == a || ended_by == b);
                assert_eq!(self.chats.remove(chat), Some((*a, *b)));
            }
        }
    }
}

fn check_invariants(p: &Presence, m: &Mirror) {
    // Clients' view matches the state.
    let online: BTreeMap<BuddyId, (String, Status)> =
        p.online().map(|(id, name, s)| (id, (name.to_string(), s))).collect();
    assert_eq!(online, m.online);
    let invs: BTreeMap<_, _> = p.invitations.values().map(|i| (i.id, (i.from, i.to))).collect();
    assert_eq!(invs, m.invitations);
    assert_eq!(p.chats, m.chats);

    for (&id, person) in &p.people {
        let mine = p.invitations_of(id);
        let sent: Vec<_> = mine.iter().filter(|i| i.from == id).collect();
        let held: Vec<_> = mine.iter().filter(|i| i.to == id).collect();
        assert_eq!(sent.len() + held.len(), mine.len());
        assert!(sent.len() <= 1, "{id:?} sent several invitations");
        let chat = p.chat_of(id);
        let busy = !sent.is_empty() || chat.is_some();
        assert_eq!(p.status(id), Some(if busy { Status::Busy } else { Status::Available }));
        assert!(sent.is_empty() || chat.is_none(), "{id:?} both inviting and chatting");
        assert!(held.is_empty() || !busy, "{id:?} busy while holding invitations");
        // Grace is exactly "no connection left".
        assert_eq!(person.connections == 0, person.grace.is_some());
        assert_eq!(p.connections(id), person.connections);
        if let Some((c, peer)) = chat {
            assert_ne!(peer, id);
            assert_eq!(p.chat_of(peer), Some((c, id)));
            let (a, b) = p.chat_members(c).unwrap();
            assert!((a, b) == (id, peer) || (a, b) == (peer, id));
        }
    }
    for inv in p.invitations.values() {
        assert!(p.is_online(inv.from) && p.is_online(inv.to));
        assert_ne!(inv.from, inv.to);
        assert_eq!(p.people[&inv.from].sent, Some(inv.id));
        assert!(p.people[&inv.to].held.contains(&inv.id));
        assert_eq!(p.chat_of(inv.from), None, "inviter in a chat");
        assert_eq!(p.status(inv.to), Some(Status::Available));
    }
    let held_total: usize = p.people.values().map(|x| x.held.len()).sum();
    assert_eq!(held_total, p.invitations.len());
    let mut in_chat = BTreeSet::new();
    for (&c, &(a, b)) in &p.chats {
        assert!(p.is_online(a) && p.is_online(b) && a != b);
        assert!(in_chat.insert(a) && in_chat.insert(b), "someone in two chats");
        assert_eq!(p.people[&a].chat, Some(c));
        assert_eq!(p.people[&b].chat, Some(c));
    }
    let chatting = p.people.values().filter(|x| x.chat.is_some()).count();
    assert_eq!(chatting, in_chat.len());
}

fn pick_invitation(p: &Presence, pick: Option<usize>) -> InvitationId {
    match pick {
        Some(i) if !p.invitations.is_empty() => *p.invitations.keys().nth(i % p.invitations.len()).unwrap(),
        _ => InvitationId(10_000),
    }
}

fn pick_chat(p: &Presence, pick: Option<usize>) -> BuddyChatId {
    match pick {
        Some(i) if !p.chats.is_empty() => *p.chats.keys().nth(i % p.chats.len()).unwrap(),
        _ => BuddyChatId(10_000),
    }
}

fn run(p: &mut Presence, m: &Mirror, op: &Op, out: &mut Vec<BuddyDecision>) -> Result<(), BuddyError> {
    match *op {
        Op::Connect(w, n) => p.connect(BuddyId(w), NAMES[n], out),
        Op::Disconnect(w) => p.disconnect(BuddyId(w), out),
        Op::Grace(w, stale) => {
            let seen = m.epochs.get(&BuddyId(w)).map(Vec::as_slice).unwrap_or(&[]);
            let epoch = match (stale, seen) {
                (false, [.., last]) => *last,
                (true, [first, .., _]) => *first,
                _ => 12_345,
            };
            p.grace_expired(BuddyId(w), epoch, out)
        }
        Op::Invite(a, b) => p.invite(BuddyId(a), BuddyId(b), out),
        Op::Cancel(w, i) => {
            let inv = pick_invitation(p, i);
            p.cancel(BuddyId(w), inv, out)
        }
        Op::Decline(w, i) => {
            let inv = pick_invitation(p, i);
            p.decline(BuddyId(w), inv, out)
        }
        Op::Accept(w, i) => {
            let inv = pick_invitation(p, i);
            p.accept(BuddyId(w), inv, out)
        }
        Op::EndChat(w, i) => {
            let chat = pick_chat(p, i);
            p.end_chat(BuddyId(w), chat, out)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_after_every_step(ops in proptest::collection::vec(op(), 1..60)) {
        let mut p = Presence::new();
        let mut m = Mirror::default();
        for op in &ops {
            let before = p.clone();
            let mut out = Vec::new();
            match run(&mut p, &m, op, &mut out) {
                Ok(()) => {
                    for d in &out {
                        m.apply(d);
                    }
                }
                Err(e) => {
                    prop_assert!(out.is_empty(), "{:?} failed with {:?} but pushed {:?}", op, e, out);
                    prop_assert_eq!(&p, &before, "{:?} failed with {:?} but changed state", op, e);
                }
            }
            check_invariants(&p, &m);
        }
    }

    #[test]
    fn reload_is_invisible(ops in proptest::collection::vec(op(), 1..60), who in 0..PEOPLE - 1) {
        // Closing a person's last connection and reopening it within
        // grace changes nothing anyone can observe.
        let mut p = Presence::new();
        let m = Mirror::default();
        for op in &ops {
            let _ = run(&mut p, &m, op, &mut Vec::new());
        }
        let id = BuddyId(who);
        prop_assume!(p.connections(id) == 1);
        let before = p.clone();
        let mut out = Vec::new();
        p.disconnect(id, &mut out).unwrap();
        let epoch = match out[..] { [D::LeaveGraceStarted { epoch, .. }] => epoch, _ => panic!("{out:?}") };
        out.clear();
        p.connect(id, "whatever", &mut out).unwrap();
        p.grace_expired(id, epoch, &mut out).unwrap();
        prop_assert!(out.is_empty());
        prop_assert_eq!(p.online().collect::<Vec<_>>(), before.online().collect::<Vec<_>>());
        prop_assert_eq!(&p.invitations, &before.invitations);
        prop_assert_eq!(&p.chats, &before.chats);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A replica written out and loaded back (a restore after Redis lost its data) is the
    /// same presence, and goes on deciding as the original did.
    #[test]
    fn a_state_loads_back_as_the_same_presence(
        ops in proptest::collection::vec(op(), 1..60),
        after in proptest::collection::vec(op(), 0..20),
    ) {
        let mut p = Presence::new();
        let mut m = Mirror::default();
        for op in &ops {
            let mut out = Vec::new();
            if run(&mut p, &m, op, &mut out).is_ok() {
                for d in &out {
                    m.apply(d);
                }
            }
        }
        let mut loaded = Presence::from_state(p.state()).expect("a presence's own state is consistent");
        prop_assert_eq!(&loaded, &p);
        for op in &after {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let ra = run(&mut p, &m, op, &mut a);
            let rb = run(&mut loaded, &m, op, &mut b);
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(&a, &b);
            for d in &a {
                m.apply(d);
            }
        }
        prop_assert_eq!(&loaded, &p);
    }
}

#[test]
fn a_state_naming_someone_offline_is_refused() {
    let mut p = Presence::new();
    let mut out = vec![];
    p.connect(BuddyId(1), "ann", &mut out).unwrap();
    let mut state = p.state();
    state.invitations.push(Invitation {
        id: InvitationId(9),
        from: BuddyId(1),
        to: BuddyId(2),
    });
    assert!(Presence::from_state(state).is_err());
    let mut state = p.state();
    state.chats.push((BuddyChatId(3), BuddyId(1), BuddyId(1)));
    assert!(Presence::from_state(state).is_err(), "one person in a chat twice");
}
