//! Tests of the archive's room: a closing always fits, nothing exceeds the capacity.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Message,
    Open,
    /// Closes one of the conversations still open.
    Close,
    /// Another node archives one of the open conversations from now on.
    HandOn,
    Write(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Message),
        2 => Just(Op::Open),
        2 => Just(Op::Close),
        1 => Just(Op::HandOn),
        2 => (0..40usize).prop_map(Op::Write),
    ]
}

proptest! {
    /// Whatever happens, a conversation that opened can always close, nothing held
    /// exceeds the capacity, and a refused event changes nothing.
    #[test]
    fn a_closing_always_fits_and_nothing_exceeds_the_capacity(
        capacity in 2..60usize,
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut room = Room::new(capacity);
        let mut open = 0usize;
        for op in ops {
            let before = room.clone();
            match op {
                Op::Message => {
                    if !room.admit_message() {
                        prop_assert_eq!(&room, &before);
                    }
                }
                Op::Open => {
                    if room.admit_opening() {
                        open += 1;
                    } else {
                        prop_assert_eq!(&room, &before);
                    }
                }
                Op::Close if open > 0 => {
                    prop_assert!(room.admit_closing(), "the closing of an open conversation was refused");
                    open -= 1;
                }
                Op::Close => {}
                Op::HandOn if open > 0 => {
                    room.release_closing();
                    open -= 1;
                }
                Op::HandOn => {}
                Op::Write(n) => room.written(n.min(room.held())),
            }
            prop_assert!(room.held + room.reserved_closings <= capacity);
            prop_assert_eq!(room.reserved_closings, open);
        }
    }
}

#[test]
fn an_opening_needs_room_for_its_closing_too() {
    let mut room = Room::new(3);
    assert!(room.admit_message());
    assert!(room.admit_opening());
    assert!(
        !room.admit_opening(),
        "one slot left: not enough for an opening and its closing"
    );
    assert!(!room.admit_message(), "the last slot is the closing's");
    assert!(room.admit_closing());
    room.written(3);
    assert!(room.admit_opening());
}
