//! How much a bot may have queued for one customer, and for itself. A bot's socket may
//! send far faster than a customer's connection takes frames, and a connection whose
//! outbox (`OUTBOUND_BUFFER` frames) fills is closed as not reading: a bot's burst would
//! end its customer's chat as the customer's leaving. So a bot's line is refused
//! (`rate_limited`, to the bot, whose connection lives) once the customer's outbox holds
//! half its capacity: the bot's lines alone never fill it, the other half stays for
//! everyone else's frames. And a bot's own outbox holds an answer for every frame its
//! rate limit answers before it closes a flooding socket, so a burst within
//! `BOT_RATE_LIMIT_BURST` never closes the bot for not reading its answers.

/// May a bot's line join a customer's outbox that holds `queued` of `capacity` frames?
pub fn bot_line_fits(queued: usize, capacity: usize) -> bool {
    queued < capacity / 2
}

/// A bot socket's outbox: `OUTBOUND_BUFFER`, plus an answer (ack or error) for each of
/// the `burst` frames its limit lets through at once and for each of the `burst` refused
/// past it before the socket is closed for flooding.
pub fn bot_outbox_capacity(outbound_buffer: usize, burst: u32) -> usize {
    outbound_buffer.saturating_add(2usize.saturating_mul(burst as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However a bot's lines and others' frames interleave, with the customer reading
        /// none of them, the bot's lines never overflow the outbox: it overflows only once
        /// others' frames alone pass their half.
        #[test]
        fn a_bots_lines_never_overflow_a_customers_outbox(
            capacity in 8usize..600,
            pushes in proptest::collection::vec(any::<bool>(), 0..1500),
        ) {
            let others_room = capacity - capacity / 2;
            let (mut queued, mut others) = (0usize, 0usize);
            for from_bot in pushes {
                if from_bot {
                    if bot_line_fits(queued, capacity) {
                        queued += 1;
                    }
                } else if others < others_room {
                    others += 1;
                    queued += 1;
                }
                prop_assert!(queued <= capacity);
            }
        }

        /// A bot's outbox is never smaller than anyone's, and holds a whole burst's answers.
        #[test]
        fn a_bots_outbox_holds_its_bursts_answers(buffer in 8usize..65_537, burst in 1u32..100_001) {
            let capacity = bot_outbox_capacity(buffer, burst);
            prop_assert!(capacity >= buffer + 2 * burst as usize);
        }
    }
}
