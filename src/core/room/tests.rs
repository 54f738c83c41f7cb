//! Property tests of the room rules over random event sequences: every rule is checked
//! after every step, and a refused event must leave the room exactly as it was.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Join(Seat, u8),
    Away(Seat),
    Gone(Seat),
    Leave(Seat),
    EndBy(Seat),
    End,
    Start(Seat),
    Accept(Seat),
    Reject(Seat),
    HangUp(Seat),
    Signal(Seat),
    Report(Seat, bool, bool),
    Wait(u16),
}

fn seat() -> impl Strategy<Value = Seat> {
    prop_oneof![Just(Seat::Agent), Just(Seat::Visitor)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (seat(), 0u8..3).prop_map(|(s, p)| Op::Join(s, p)),
        2 => seat().prop_map(Op::Away),
        1 => seat().prop_map(Op::Gone),
        2 => seat().prop_map(Op::Leave),
        1 => seat().prop_map(Op::EndBy),
        1 => Just(Op::End),
        3 => seat().prop_map(Op::Start),
        3 => seat().prop_map(Op::Accept),
        1 => seat().prop_map(Op::Reject),
        1 => seat().prop_map(Op::HangUp),
        3 => seat().prop_map(Op::Signal),
        4 => (seat(), any::<bool>(), any::<bool>()).prop_map(|(s, c, v)| Op::Report(s, c, v)),
        3 => (1u16..5_000).prop_map(Op::Wait),
    ]
}

/// The agent seat only ever takes the agent; visitors are v0..v2.
fn person(seat: Seat, n: u8) -> String {
    match seat {
        Seat::Agent => "agent".into(),
        Seat::Visitor => format!("v{n}"),
    }
}

fn check_summary(e: &Option<Ended>, now: Millis) {
    if let Some(Ended { summary: Some(s), .. }) = e {
        assert!(s.length_ms >= 0);
        assert_eq!(s.started_at + s.length_ms, now.max(s.started_at));
        assert!((0..=s.length_ms).contains(&s.connected_ms), "{s:?}");
        assert!((0..=s.length_ms).contains(&s.camera_ms), "{s:?}");
    }
}

fn invariants(room: &LiveRoom) {
    if room.ended {
        assert!(room.agent.is_none() && room.visitor.is_none());
        assert_eq!(room.call, Call::Idle);
    }
    if room.call != Call::Idle {
        assert!(
            room.agent.is_some() && room.visitor.is_some(),
            "a call needs both seats held"
        );
    }
    if let Some(a) = &room.agent {
        assert_eq!(a.person, "agent");
    }
    if let Some(v) = &room.visitor {
        assert_eq!(
            room.last_visitor.as_ref(),
            Some(&v.person),
            "the seat's holder is its last holder"
        );
    }
    if let Call::Active(a) = &room.call {
        let both = room.agent.as_ref().unwrap().connected && room.visitor.as_ref().unwrap().connected;
        assert_eq!(a.connected_since.is_some(), both);
        assert_eq!(a.camera_since.is_some(), room.visitor.as_ref().unwrap().camera);
    }
    for h in [&room.agent, &room.visitor].into_iter().flatten() {
        if !h.here {
            assert!(!h.connected && !h.camera, "someone away reports nothing");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_rule_holds_after_every_step(ops in proptest::collection::vec(op(), 1..80)) {
        let mut room = LiveRoom::new();
        let mut now: Millis = 1_000;
        for op in ops {
            let before = room.clone();
            let refused = match op {
                Op::Wait(ms) => { now += i64::from(ms); None }
                Op::Join(s, n) => {
                    let p = person(s, n);
                    let other = room.taken_by_other(s, &p);
                    let r = room.join(s, &p);
                    if other { prop_assert_eq!(r, Err(if before.ended { Refusal::RoomEnded } else { Refusal::Full })); }
                    if let Ok(seated) = r {
                        let was = before.holder(s);
                        prop_assert_eq!(seated.replaced, was.is_some_and(|h| h.here));
                        prop_assert_eq!(seated.back, was.is_some_and(|h| !h.here));
                        prop_assert!(room.holder(s).unwrap().here);
                        // A change of hands: a free visitor seat taken by another admission
                        // than its last holder; never the same person coming back.
                        let changed = s == Seat::Visitor
                            && was.is_none()
                            && before.last_visitor.as_ref().is_some_and(|last| *last != p);
                        prop_assert_eq!(seated.changed_hands, changed);
                    }
                    r.err()
                }
                Op::Away(s) => room.away(s, now).err(),
                Op::Gone(s) => match room.gone(s, now) {
                    Ok(e) => { check_summary(&e, now); prop_assert!(room.holder(s).is_none()); None }
                    Err(r) => Some(r),
                },
                Op::Leave(s) => match room.leave(s, now) {
                    Ok(e) => {
                        check_summary(&e, now);
                        // Leaving frees the seat, ends a call they were in, never the room.
                        prop_assert!(room.holder(s).is_none());
                        prop_assert!(!room.ended);
                        prop_assert_eq!(&room.call, &Call::Idle);
                        prop_assert_eq!(e.map(|e| e.why), (before.call != Call::Idle).then_some(CallEnd::Left(s)));
                        prop_assert_eq!(room.holder(s.other()), before.holder(s.other()));
                        None
                    }
                    Err(r) => Some(r),
                },
                Op::EndBy(s) => match room.end_by(s, now) {
                    Ok(e) => {
                        check_summary(&e, now);
                        prop_assert_eq!(s, Seat::Agent, "only the host ends the room");
                        prop_assert!(before.holder(s).is_some_and(|h| h.here));
                        prop_assert!(room.ended);
                        None
                    }
                    Err(r) => {
                        if s == Seat::Visitor && !before.ended && before.holder(s).is_some_and(|h| h.here) {
                            prop_assert_eq!(r, Refusal::NotHost);
                        }
                        Some(r)
                    }
                },
                Op::End => match room.end(now) {
                    Ok(e) => { check_summary(&e, now); None }
                    Err(r) => Some(r),
                },
                Op::Start(s) => {
                    let r = room.start_call(s);
                    if r.is_ok() { prop_assert_eq!(&room.call, &Call::Ringing { caller: s }); }
                    r.err()
                }
                Op::Accept(s) => {
                    let r = room.accept(s, now);
                    if r.is_ok() {
                        prop_assert_eq!(&before.call, &Call::Ringing { caller: s.other() });
                        prop_assert!(matches!(room.call, Call::Active(_)));
                    }
                    r.err()
                }
                Op::Reject(s) => match room.reject(s, now) {
                    Ok(e) => {
                        prop_assert_eq!(e.map(|e| e.why), Some(CallEnd::Rejected(s)));
                        prop_assert_eq!(&room.call, &Call::Idle);
                        None
                    }
                    Err(r) => Some(r),
                },
                Op::HangUp(s) => match room.hang_up(s, now) {
                    Ok(e) => {
                        check_summary(&e, now);
                        prop_assert!(e.is_some(), "hanging up ends a call");
                        prop_assert_eq!(&room.call, &Call::Idle);
                        None
                    }
                    Err(r) => Some(r),
                },
                Op::Signal(s) => match room.signal(s) {
                    Ok(to) => {
                        // Never echoed, only to a present other side of an active call.
                        prop_assert_ne!(to, s);
                        prop_assert!(room.holder(to).is_some_and(|h| h.here));
                        prop_assert!(room.holder(s).is_some_and(|h| h.here));
                        prop_assert!(matches!(room.call, Call::Active(_)));
                        None
                    }
                    Err(r) => Some(r),
                },
                Op::Report(s, c, v) => room.report(s, c, v, now).err(),
            };
            if refused.is_some() {
                prop_assert_eq!(&room, &before, "a refused event changes nothing");
            }
            invariants(&room);
        }
        // Whatever happened, ending the room closes the books within the call's length.
        if let Ok(e) = room.end(now + 1) { check_summary(&e, now + 1); }
    }

    /// The visitor seat across joins: one admission holds it at a time (a live holder,
    /// or an unexpired reservation); a refused reservation changes nothing; a holder is
    /// never refused their own seat; a release frees only one's own reservation.
    #[test]
    fn one_admission_holds_the_visitor_seat(
        steps in proptest::collection::vec((0u8..4, 0u8..3, 0i64..2_000, any::<bool>()), 1..60),
    ) {
        let mut hold: Option<SeatHold> = None;
        let mut live: Option<String> = None;
        let mut now: Millis = 0;
        for (what, who, dt, flag) in steps {
            now += dt;
            let who = format!("v{who}");
            match what {
                0 => {
                    let before = hold.clone();
                    let other = seat_held_by_other(hold.as_ref(), live.as_deref(), &who, now);
                    let r = reserve_seat(&mut hold, live.as_deref(), &who, now + 1_000, now);
                    prop_assert_eq!(r.is_err(), other);
                    if other {
                        prop_assert_eq!(&hold, &before, "a refused reservation changes nothing");
                    } else {
                        let h = hold.clone().unwrap();
                        prop_assert_eq!(&h.admission, &who);
                        prop_assert!(h.until >= now + 1_000);
                        prop_assert!(!seat_held_by_other(hold.as_ref(), live.as_deref(), &who, now));
                    }
                }
                // Connecting: the socket reserves first (refused: no seat), then the live
                // seat (LiveRoom::join) refuses someone else.
                1 if flag => {
                    if reserve_seat(&mut hold, live.as_deref(), &who, now + 1_000, now).is_ok() {
                        prop_assert!(live.as_ref().is_none_or(|p| *p == who));
                        live = Some(who);
                    }
                }
                2 => live = None,
                _ => {
                    let before = hold.clone();
                    release_seat(&mut hold, &who);
                    match &before {
                        Some(h) if h.admission == who => prop_assert_eq!(&hold, &None),
                        _ => prop_assert_eq!(&hold, &before),
                    }
                }
            }
            if let Some(p) = &live {
                prop_assert!(!seat_held_by_other(hold.as_ref(), live.as_deref(), p, now), "the holder keeps the seat");
                prop_assert!(seat_held_by_other(hold.as_ref(), live.as_deref(), "newcomer", now));
            }
        }
    }

    /// The join checks come in the documented order (ended, full, locked, …): the first
    /// failing one is the answer.
    #[test]
    fn join_checks_come_in_order(full: bool, ended: bool, locked: bool, locked_for_all: bool, a: bool, b: bool, c: bool, kind in 0u8..3) {
        let how = match kind {
            0 => JoinBy::Customer { phone_ok: a, email_ok: c, password_ok: b },
            1 => JoinBy::Guest { has_name: a, has_contact: b, password_ok: c },
            _ => JoinBy::Code { valid: a, guest_room: b, has_name: c, has_contact: c },
        };
        let r = check_join(&JoinFacts { full, ended, locked, locked_for_all, how });
        let expected = if ended { Err(JoinRefusal::Ended) }
            else if full { Err(JoinRefusal::Full) }
            else if locked { Err(JoinRefusal::Locked) }
            else if locked_for_all { Err(JoinRefusal::LockedForAll) }
            else { match how {
                JoinBy::Customer { phone_ok: false, .. } => Err(JoinRefusal::WrongPhone),
                JoinBy::Customer { email_ok: false, .. } => Err(JoinRefusal::WrongEmail),
                JoinBy::Customer { password_ok: false, .. } => Err(JoinRefusal::WrongPassword),
                JoinBy::Guest { has_name: false, .. } => Err(JoinRefusal::MissingName),
                JoinBy::Guest { has_contact: false, .. } => Err(JoinRefusal::MissingContact),
                JoinBy::Guest { password_ok: false, .. } => Err(JoinRefusal::WrongPassword),
                JoinBy::Code { guest_room: true, has_name: false, .. } => Err(JoinRefusal::MissingName),
                JoinBy::Code { valid: false, .. } => Err(JoinRefusal::WrongCode),
                _ => Ok(()),
            }};
        prop_assert_eq!(r, expected);
    }

    /// The lock: an address is locked exactly from its `max`-th wrong attempt, others are not.
    #[test]
    fn the_lock_counts_per_address(addresses in proptest::collection::vec(0u8..4, 0..40), max in 1u32..6) {
        let mut attempts = Vec::new();
        let mut counts = [0u32; 4];
        for a in addresses {
            count_wrong(&mut attempts, &format!("10.0.0.{a}"));
            counts[a as usize] += 1;
            for (i, n) in counts.iter().enumerate() {
                prop_assert_eq!(is_locked(&attempts, &format!("10.0.0.{i}"), max), *n >= max);
            }
        }
    }

    /// A refund takes back exactly the attempt just counted.
    #[test]
    fn a_refund_undoes_a_count(addresses in proptest::collection::vec(0u8..8, 0..40), last in 0u8..8) {
        let mut attempts = Vec::new();
        for a in addresses {
            count_wrong(&mut attempts, &format!("10.0.0.{a}"));
        }
        let before = attempts.clone();
        count_wrong(&mut attempts, &format!("10.0.0.{last}"));
        refund_wrong(&mut attempts, &format!("10.0.0.{last}"));
        prop_assert_eq!(attempts, before);
    }

    /// The room's lock: wrong attempts from any number of addresses (more than are
    /// tracked, so some are forgotten), each counted only while neither lock holds, as the
    /// join does; the room locks for all exactly when the attempts counted reach `max`.
    #[test]
    fn the_room_locks_for_all_at_its_total(
        addresses in proptest::collection::vec(0u16..3_000, 0..1_500),
        per_address in 1u32..6,
        max in 1u32..=1_000,
    ) {
        let mut attempts = Vec::new();
        let mut counted = 0u32;
        for a in addresses {
            let address = format!("10.0.{}.{}", a / 256, a % 256);
            if is_locked(&attempts, &address, per_address) || is_locked_for_all(&attempts, max) {
                continue;
            }
            count_wrong(&mut attempts, &address);
            counted += 1;
            prop_assert_eq!(is_locked_for_all(&attempts, max), counted >= max);
        }
    }
}

#[test]
fn a_whole_call_is_accounted() {
    let mut room = LiveRoom::new();
    room.join(Seat::Agent, "agent").unwrap();
    assert_eq!(room.start_call(Seat::Agent), Err(Refusal::PeerAbsent));
    room.join(Seat::Visitor, "v").unwrap();
    assert_eq!(room.join(Seat::Visitor, "w"), Err(Refusal::Full));
    assert_eq!(room.signal(Seat::Agent), Err(Refusal::NoCall));
    room.start_call(Seat::Agent).unwrap();
    assert_eq!(
        room.accept(Seat::Agent, 0),
        Err(Refusal::NotRinging),
        "the caller cannot accept"
    );
    room.accept(Seat::Visitor, 1_000).unwrap();
    assert_eq!(room.signal(Seat::Visitor), Ok(Seat::Agent));
    room.report(Seat::Agent, true, true, 2_000).unwrap();
    room.report(Seat::Visitor, true, true, 3_000).unwrap(); // both connected, camera on from 3 s
    room.report(Seat::Visitor, true, false, 5_000).unwrap(); // camera off at 5 s
    room.away(Seat::Visitor, 8_000).unwrap(); // connection lost at 8 s
    room.join(Seat::Visitor, "v").unwrap();
    let ended = room.hang_up(Seat::Agent, 11_000).unwrap().unwrap();
    assert_eq!(ended.why, CallEnd::HungUp(Seat::Agent));
    assert_eq!(
        ended.summary,
        Some(CallSummary {
            started_at: 1_000,
            length_ms: 10_000,
            connected_ms: 5_000,
            camera_ms: 2_000
        })
    );
    assert!(room.end(12_000).unwrap().is_none());
    assert_eq!(room.join(Seat::Agent, "agent"), Err(Refusal::RoomEnded));
}

#[test]
fn leaving_is_not_ending() {
    let mut room = LiveRoom::new();
    room.join(Seat::Agent, "agent").unwrap();
    room.join(Seat::Visitor, "v").unwrap();
    room.start_call(Seat::Agent).unwrap();
    room.accept(Seat::Visitor, 1_000).unwrap();
    assert_eq!(room.end_by(Seat::Visitor, 2_000), Err(Refusal::NotHost));
    let ended = room.leave(Seat::Visitor, 3_000).unwrap().unwrap();
    assert_eq!(ended.why, CallEnd::Left(Seat::Visitor));
    assert!(!room.ended && room.visitor.is_none() && room.call == Call::Idle);
    // The same admission comes back: no change of hands.
    let back = room.join(Seat::Visitor, "v").unwrap();
    assert!(!back.changed_hands && !back.back && !back.replaced);
    room.leave(Seat::Visitor, 4_000).unwrap();
    assert!(room.join(Seat::Visitor, "w").unwrap().changed_hands);
    room.leave(Seat::Agent, 5_000).unwrap();
    assert_eq!(room.end_by(Seat::Agent, 6_000), Err(Refusal::NotInRoom));
    room.join(Seat::Agent, "agent").unwrap();
    assert!(room.end_by(Seat::Agent, 7_000).unwrap().is_none());
    assert!(room.ended);
    assert_eq!(room.join(Seat::Visitor, "w"), Err(Refusal::RoomEnded));
}

#[test]
fn an_appointment_room_is_open_through_its_slot_and_grace() {
    let closes = appointment_room_closes_at(10_000, 500);
    assert!(open_at(Some(closes), 10_500));
    assert!(!open_at(Some(closes), 10_501));
    assert!(open_at(None, i64::MAX), "a room without a closing time stays open");
}
