//! Unit tests of each conversation rule, then property tests that drive random histories
//! (pairings, messages from both sides, returns, status changes by anyone, snoozes, time
//! passing) and check every invariant of the module after each step.

use proptest::prelude::*;

use super::*;

const HOUR: i64 = 3600 * 1000;

fn ann() -> AgentId {
    AgentId("ann".into())
}

fn bob() -> AgentId {
    AgentId("bob".into())
}

fn held_by_ann(now: i64) -> Conversation {
    let mut c = Conversation::new(now);
    c.assigned(ann(), now);
    c.customer_arrived().unwrap();
    c
}

#[test]
fn a_customer_message_reopens_a_resolved_conversation_and_counts_the_reopen() {
    let rules = Rules::default();
    let mut c = held_by_ann(0);
    c.customer_wrote(1, 5);
    c.set_status(Actor::Agent(&ann()), Status::Resolved, 10, &rules)
        .unwrap();
    assert_eq!(c.time_to_resolution(), Some(10));
    c.customer_left();

    let change = c.customer_wrote(2, 20).unwrap();
    assert_eq!(change.from, Status::Resolved);
    assert_eq!(c.status(), Status::Open);
    assert_eq!((c.resolutions(), c.reopens()), (1, 1));
    assert_eq!(c.time_to_resolution(), None, "not resolved now");
}

#[test]
fn pending_and_snoozed_open_on_a_customer_message_without_counting_a_reopen() {
    let rules = Rules::default();
    for to in [Status::Pending, Status::Snoozed { until: 5 * HOUR }] {
        let mut c = held_by_ann(0);
        c.set_status(Actor::Agent(&ann()), to, 1, &rules).unwrap();
        assert_eq!(c.customer_wrote(1, 2).unwrap().to, Status::Open);
        assert_eq!(c.reopens(), 0);
    }
}

#[test]
fn a_returning_customer_goes_back_to_their_agent_within_the_sticky_time_only() {
    let rules = Rules {
        sticky_ms: 2 * HOUR,
        ..Rules::default()
    };
    let mut c = held_by_ann(0);
    c.agent_wrote(&ann(), 1, HOUR).unwrap();
    c.customer_left();
    assert_eq!(c.route_on_return(false, 3 * HOUR, &rules), Some(Route::Prefer(ann())));
    assert_eq!(c.route_on_return(false, 3 * HOUR + 1, &rules), Some(Route::Line));
    assert_eq!(
        c.route_on_return(true, 0, &rules),
        None,
        "still paired: nothing to route"
    );
    assert_eq!(
        Conversation::new(0).route_on_return(false, 0, &rules),
        Some(Route::Line)
    );
}

#[test]
fn only_the_holder_or_an_admin_changes_the_status_and_a_refusal_changes_nothing() {
    let rules = Rules::default();
    let mut c = held_by_ann(0);
    let before = c.clone();
    assert_eq!(
        c.set_status(Actor::Agent(&bob()), Status::Resolved, 1, &rules),
        Err(Refusal::NotYours)
    );
    assert_eq!(
        c.set_status(Actor::Customer, Status::Pending, 1, &rules),
        Err(Refusal::NotForCustomers)
    );
    assert_eq!(c.agent_wrote(&bob(), 1, 1), Err(Refusal::NotYours));
    assert_eq!(c, before);
    assert!(
        c.set_status(Actor::Admin, Status::Pending, 1, &rules)
            .unwrap()
            .is_some()
    );
    assert!(
        c.set_status(Actor::Customer, Status::Resolved, 2, &rules)
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_snooze_in_the_past_or_absurdly_far_is_refused() {
    let rules = Rules::default();
    let mut c = held_by_ann(0);
    let by = Actor::Agent(&ann());
    let now = 100 * HOUR;
    assert_eq!(
        c.set_status(by, Status::Snoozed { until: now }, now, &rules),
        Err(Refusal::SnoozeInPast)
    );
    let far = now + rules.max_snooze_ms + 1;
    assert_eq!(
        c.set_status(by, Status::Snoozed { until: far }, now, &rules),
        Err(Refusal::SnoozeTooFar)
    );
    assert_eq!(c.status(), Status::Open);
}

#[test]
fn a_snooze_that_runs_out_opens_the_conversation_to_its_holder() {
    let rules = Rules::default();
    let mut c = held_by_ann(0);
    c.set_status(Actor::Agent(&ann()), Status::Snoozed { until: HOUR }, 0, &rules)
        .unwrap();
    assert_eq!(c.wakes_at(), Some(HOUR));
    assert_eq!(c.tick(HOUR - 1), None);
    let woken = c.tick(HOUR).unwrap();
    assert_eq!(woken.attention, Some(ann()));
    assert_eq!(c.status(), Status::Open);
    assert_eq!(c.tick(2 * HOUR), None, "once");
}

#[test]
fn a_snooze_that_ran_out_is_marked_until_its_holder_opens_it_and_only_then() {
    let rules = Rules::default();
    let snoozed = |c: &mut Conversation| {
        c.set_status(Actor::Agent(&ann()), Status::Snoozed { until: HOUR }, 0, &rules)
            .unwrap();
    };
    let mut c = held_by_ann(0);
    snoozed(&mut c);
    assert_eq!(c.snooze_ended_at(), None, "not while snoozed");
    c.tick(HOUR + 5).unwrap();
    assert_eq!(c.snooze_ended_at(), Some(HOUR + 5));
    assert!(!c.opened_by(&bob()), "only its holder's opening clears it");
    assert_eq!(c.snooze_ended_at(), Some(HOUR + 5));
    assert!(c.opened_by(&ann()));
    assert_eq!(c.snooze_ended_at(), None);
    assert!(!c.opened_by(&ann()), "once");

    // Opened by a person or a customer's line instead: no mark.
    let mut c = held_by_ann(0);
    snoozed(&mut c);
    c.set_status(Actor::Agent(&ann()), Status::Open, 10, &rules).unwrap();
    assert_eq!(c.snooze_ended_at(), None);
    let mut c = held_by_ann(0);
    snoozed(&mut c);
    c.customer_wrote(1, 10);
    assert_eq!(c.snooze_ended_at(), None);
    // Woken, then parked again or answered by its holder: the mark goes.
    let mut c = held_by_ann(0);
    snoozed(&mut c);
    c.tick(HOUR).unwrap();
    c.agent_wrote(&ann(), 1, HOUR + 1).unwrap();
    assert_eq!(c.snooze_ended_at(), None);
}

#[test]
fn a_second_live_session_is_refused_until_the_first_is_gone() {
    let mut c = held_by_ann(0);
    assert_eq!(c.customer_arrived(), Err(Refusal::AlreadyLive));
    c.customer_left();
    assert_eq!(c.customer_arrived(), Ok(()));
}

#[test]
fn an_archived_conversation_from_before_statuses_is_resolved() {
    let c = Conversation::migrated(Some(ann()), 10, 50, 7);
    assert_eq!(c.status(), Status::Resolved);
    assert_eq!(c.next_seq(), 8, "its seq goes on");
    assert_eq!(c.time_to_resolution(), Some(40));
}

// ---- property tests ----

#[derive(Debug, Clone)]
enum Op {
    Assign(usize),
    Arrive,
    Leave,
    CustomerWrites,
    AgentWrites(usize),
    SetStatus {
        who: usize,
        to: u8,
        ahead: i64,
    },
    /// Its chat's end, decided `ago` ms before now, applied now (reported by another node).
    ChatEnded {
        ago: i64,
    },
    Pass(i64),
    /// `who` (as [`actor`]) reassigns it to agent `to`.
    Reassign {
        who: usize,
        to: usize,
    },
    /// Agent `0` or `1` opens it in their console.
    Opened(usize),
}

/// Agent 0 and 1 are agents, 2 an admin, 3 the customer.
fn actor(who: usize, agents: &[AgentId]) -> Actor<'_> {
    match who {
        0 | 1 => Actor::Agent(&agents[who]),
        2 => Actor::Admin,
        _ => Actor::Customer,
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize).prop_map(Op::Assign),
        Just(Op::Arrive),
        Just(Op::Leave),
        Just(Op::CustomerWrites),
        (0..2usize).prop_map(Op::AgentWrites),
        (0..4usize, 0..4u8, -HOUR..(400 * 24 * HOUR)).prop_map(|(who, to, ahead)| Op::SetStatus { who, to, ahead }),
        (0..(2 * HOUR)).prop_map(|ago| Op::ChatEnded { ago }),
        (0..(10 * 24 * HOUR)).prop_map(Op::Pass),
        (0..4usize, 0..2usize).prop_map(|(who, to)| Op::Reassign { who, to }),
        (0..2usize).prop_map(Op::Opened),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_invariant_holds_over_random_histories(ops in proptest::collection::vec(op(), 1..80)) {
        let rules = Rules { sticky_ms: 24 * HOUR, ..Rules::default() };
        let agents = [ann(), bob()];
        let mut now = 0;
        let mut c = Conversation::new(now);
        let mut seq = 0u64;
        let mut turn_at: Option<(AgentId, i64)> = None;
        for op in ops {
            let before = c.clone();
            let mut is_assign = matches!(op, Op::Assign(_));
            let op_was_pass = matches!(op, Op::Pass(_));
            match op {
                Op::Assign(a) => {
                    c.assigned(agents[a].clone(), now);
                    turn_at = Some((agents[a].clone(), now));
                    prop_assert_eq!(c.holder(), Some(&agents[a]));
                }
                Op::Arrive => {
                    let result = c.customer_arrived();
                    prop_assert_eq!(result.is_err(), before.is_live(), "one live session at most");
                    if result.is_err() { prop_assert_eq!(&c, &before); }
                }
                Op::Leave => c.customer_left(),
                Op::CustomerWrites => {
                    seq += 1;
                    c.customer_wrote(seq, now);
                    prop_assert_eq!(c.status(), Status::Open);
                    if before.status() == Status::Resolved {
                        prop_assert_eq!(c.reopens(), before.reopens() + 1);
                    }
                }
                Op::AgentWrites(a) => {
                    let result = c.agent_wrote(&agents[a], seq + 1, now);
                    prop_assert_eq!(result.is_ok(), before.holder() == Some(&agents[a]));
                    match result {
                        Ok(()) => { seq += 1; turn_at = Some((agents[a].clone(), now)); }
                        Err(_) => prop_assert_eq!(&c, &before),
                    }
                    prop_assert_eq!(c.status(), before.status(), "a reply never changes the status");
                }
                Op::SetStatus { who, to, ahead } => {
                    let to = match to {
                        0 => Status::Open,
                        1 => Status::Pending,
                        2 => Status::Snoozed { until: now + ahead },
                        _ => Status::Resolved,
                    };
                    let by = actor(who, &agents);
                    match c.set_status(by, to, now, &rules) {
                        Ok(_) => {
                            prop_assert_eq!(c.status(), to);
                            if let Status::Snoozed { until } = to {
                                prop_assert!(until > now && until - now <= rules.max_snooze_ms);
                            }
                            if let Actor::Agent(a) = by {
                                prop_assert_eq!(before.holder(), Some(a), "only the holder");
                                turn_at = Some((a.clone(), now));
                            }
                            if let Actor::Customer = by { prop_assert_eq!(to, Status::Resolved); }
                        }
                        Err(_) => prop_assert_eq!(&c, &before),
                    }
                }
                Op::ChatEnded { ago } => {
                    let ended_at = now - ago;
                    let change = c.chat_ended(ended_at, &rules);
                    if before.status_since() > ended_at {
                        prop_assert_eq!(&c, &before, "a newer status stands");
                    } else {
                        prop_assert_eq!(c.status(), Status::Resolved);
                        prop_assert_eq!(change.is_some(), before.status() != Status::Resolved);
                    }
                }
                Op::Reassign { who, to } => {
                    let by = actor(who, &agents);
                    match c.reassign(by, &agents[to], now) {
                        Ok(changed) => {
                            prop_assert!(!before.is_live(), "a live conversation's agent is the routing core's");
                            prop_assert_eq!(c.holder(), Some(&agents[to]));
                            prop_assert_eq!(changed, before.holder() != Some(&agents[to]));
                            if let Actor::Agent(a) = by {
                                prop_assert!(before.holder() == Some(a) || (before.holder().is_none() && a == &agents[to]));
                            }
                            prop_assert!(!matches!(by, Actor::Customer));
                            prop_assert_eq!(c.status(), before.status(), "a reassignment keeps the status");
                            if changed {
                                turn_at = Some((agents[to].clone(), now));
                            }
                            is_assign = true;
                        }
                        Err(_) => prop_assert_eq!(&c, &before),
                    }
                }
                Op::Opened(a) => {
                    let cleared = c.opened_by(&agents[a]);
                    prop_assert_eq!(cleared, before.holder() == Some(&agents[a]) && before.snooze_ended_at().is_some());
                    if cleared { prop_assert_eq!(c.snooze_ended_at(), None); } else { prop_assert_eq!(&c, &before); }
                }
                Op::Pass(ms) => {
                    now += ms;
                    let woken = c.tick(now);
                    match before.status() {
                        Status::Snoozed { until } if until <= now => {
                            let woken = woken.expect("a snooze that ran out wakes");
                            prop_assert_eq!(woken.attention.as_ref(), before.holder());
                            prop_assert_eq!(c.status(), Status::Open);
                            prop_assert_eq!(c.snooze_ended_at(), Some(now), "marked as the timer's doing");
                        }
                        _ => { prop_assert!(woken.is_none()); prop_assert_eq!(&c, &before); }
                    }
                }
            }
            // After every step.
            if c.snooze_ended_at().is_some() {
                prop_assert_eq!(c.status(), Status::Open, "marked only while open");
                if c.snooze_ended_at() != before.snooze_ended_at() {
                    prop_assert!(op_was_pass, "only a snooze running out marks it");
                }
            }
            if c.status() != before.status() {
                prop_assert!(c.status_since() >= before.status_since(), "a status change is newer than the one it replaces");
            }
            prop_assert!(c.status_since() <= now);
            prop_assert_eq!(c.last_seq(), seq, "seq gapless over every session");
            prop_assert!(c.reopens() <= c.resolutions());
            if !is_assign {
                prop_assert_eq!(c.holder(), before.holder(), "only a pairing or a reassignment moves it between lists");
            }
            match c.route_on_return(false, now, &rules) {
                Some(Route::Prefer(agent)) => {
                    let (last, at) = turn_at.clone().expect("preferred only after a turn");
                    prop_assert_eq!(Some(&agent), c.holder());
                    prop_assert_eq!(&agent, &last);
                    prop_assert!(now - at <= rules.sticky_ms);
                }
                Some(Route::Line) => {
                    if let (Some(holder), Some((last, at))) = (c.holder(), turn_at.clone()) {
                        prop_assert!(holder != &last || now - at > rules.sticky_ms);
                    }
                }
                None => prop_assert!(false, "a return without a paired holder is routed"),
            }
        }
    }
}

#[test]
fn a_conversation_nobody_is_live_in_is_reassigned_by_its_holder_or_an_admin_or_taken_when_unassigned() {
    let mut c = held_by_ann(0);
    // Live: the routing core's pairing stands (a transfer moves a live chat).
    assert_eq!(c.reassign(Actor::Admin, &bob(), 1), Err(Refusal::Live));
    c.customer_left();
    assert_eq!(
        c.reassign(Actor::Agent(&bob()), &bob(), 2),
        Err(Refusal::AlreadyAssigned)
    );
    assert_eq!(
        c.reassign(Actor::Agent(&bob()), &ann(), 2),
        Err(Refusal::NotYours),
        "not his to move"
    );
    assert_eq!(c.reassign(Actor::Agent(&ann()), &ann(), 2), Ok(false), "already hers");
    assert_eq!(c.reassign(Actor::Customer, &bob(), 2), Err(Refusal::NotForCustomers));
    assert_eq!(c.holder(), Some(&ann()));
    assert_eq!(c.reassign(Actor::Agent(&ann()), &bob(), 3), Ok(true));
    assert_eq!(c.holder(), Some(&bob()));
    assert_eq!(
        c.reassign(Actor::Agent(&ann()), &ann(), 4),
        Err(Refusal::AlreadyAssigned)
    );
    assert_eq!(c.reassign(Actor::Admin, &ann(), 5), Ok(true));
    // The sticky preference is the new holder's, from now.
    assert_eq!(
        c.route_on_return(false, 6, &Rules::default()),
        Some(Route::Prefer(ann()))
    );

    // Unassigned: any agent takes it for themselves, not for someone else.
    let mut waiting = Conversation::new(0);
    assert_eq!(
        waiting.reassign(Actor::Agent(&bob()), &ann(), 1),
        Err(Refusal::NotYours)
    );
    assert_eq!(waiting.reassign(Actor::Agent(&bob()), &bob(), 1), Ok(true));
    assert_eq!(
        waiting.reassign(Actor::Agent(&ann()), &ann(), 2),
        Err(Refusal::AlreadyAssigned)
    );
}

#[test]
fn an_end_decided_before_a_newer_status_leaves_that_status() {
    let rules = Rules::default();
    let mut c = held_by_ann(0);
    c.set_status(Actor::Agent(&ann()), Status::Pending, 50, &rules).unwrap();
    assert_eq!(c.chat_ended(40, &rules), None, "decided before the agent's pending");
    assert_eq!((c.status(), c.status_since()), (Status::Pending, 50));
    let change = c.chat_ended(60, &rules).unwrap();
    assert_eq!(
        (change.to, c.status_since(), c.resolutions()),
        (Status::Resolved, 60, 1)
    );
}

#[test]
fn a_live_line_opens_what_was_parked_before_it_and_leaves_a_status_set_after_it() {
    let rules = Rules::default();
    for to in [Status::Pending, Status::Snoozed { until: 5 * HOUR }, Status::Resolved] {
        let mut c = held_by_ann(0);
        c.set_status(Actor::Agent(&ann()), to, 50, &rules).unwrap();
        assert_eq!(c.customer_line(40), None, "written before the {to:?}");
        assert_eq!((c.status(), c.status_since()), (to, 50));
        let change = c.customer_line(60).unwrap();
        assert_eq!((change.from, change.to, c.status_since()), (to, Status::Open, 60));
        assert_eq!(c.reopens(), u32::from(to == Status::Resolved));
        assert_eq!(c.customer_line(70), None, "open already");
    }
}

#[test]
fn a_line_recorded_before_its_node_heard_of_the_park_opens_it_when_it_came_after_the_park() {
    // The node recorded the line at 60 and hears only then of a park since 50: it opens
    // it, at the line's time, as the store's record decides (`customer_line`).
    assert_eq!(line_opens_what_it_heard_of_late(50, Some(60)), Some(60));
    assert_eq!(
        line_opens_what_it_heard_of_late(50, Some(50)),
        Some(50),
        "at the park's time"
    );
    // Parked after the line: the park stands; and no line, nothing to open.
    assert_eq!(line_opens_what_it_heard_of_late(50, Some(40)), None);
    assert_eq!(line_opens_what_it_heard_of_late(50, None), None);
    // One rule with the record's: what the node hands on, the record opens.
    let mut c = held_by_ann(0);
    c.set_status(Actor::Agent(&ann()), Status::Pending, 50, &Rules::default())
        .unwrap();
    let at = line_opens_what_it_heard_of_late(c.status_since(), Some(60)).unwrap();
    assert_eq!(c.customer_line(at).map(|change| change.to), Some(Status::Open));
}
