//! Which sign-in of an agent an event of their coming online, or of its take-back, is
//! about (`docs/cluster.md` §13). Each coming-online (or back) call names the sign-in it
//! is made for — the connection that made it, `<process nonce>:<connection>` — and the
//! call that takes it back (its answer and the read after it lost) names the same one; the
//! events stream carries the names. The node that made them welcomes only the sign-in an
//! event names, and lets go only of the sign-in a take-back names: a page that signed in
//! again while the take-back waited in the outbox is welcomed by its own event, and its
//! record outlives the take-back of the sign-in before. A coming back's take-back
//! (`agent_disconnected`) names its sign-in too: a second tab that took that sign-in's place
//! (welcomed on its strength) is closed by it, where a newer sign-in's desk stays. Pure:
//! the hub asks, then acts.

use crate::hub::delivery::ConnId;

/// The sign-in id of `conn` in the process `nonce`.
pub(super) fn sign_in_id(nonce: &str, conn: ConnId) -> String {
    format!("{nonce}:{}", conn.0)
}

/// Who an event of this node's says it was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Named {
    /// No sign-in: a going offline that takes nothing back, or an entry of a build before
    /// sign-ins.
    Nobody,
    /// A sign-in of this process: its connection.
    Here(ConnId),
    /// A sign-in of another process under this node's id (one before a restart).
    Elsewhere,
}

/// What the sign-in id `named` (if any) names for the process `nonce`.
pub(super) fn named(nonce: &str, named: Option<&str>) -> Named {
    let Some(named) = named else { return Named::Nobody };
    named
        .strip_prefix(nonce)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|conn| conn.parse().ok())
        .map_or(Named::Elsewhere, |conn| Named::Here(ConnId(conn)))
}

/// Whether this node's event of an agent's coming online (or back) welcomes the sign-in
/// `awaiting` (whose welcome waits for its event): only the event of that very sign-in
/// does. An earlier one's — a call taken back, replayed after the page signed in again —
/// welcomes nobody; its take-back follows it. An event naming nobody (a build before
/// sign-ins) welcomes whoever waits, as before.
pub(super) fn welcomes(awaiting: Option<ConnId>, event: Named) -> bool {
    match (awaiting, event) {
        (None, _) | (_, Named::Elsewhere) => false,
        (Some(_), Named::Nobody) => true,
        (Some(waiting), Named::Here(conn)) => waiting == conn,
    }
}

/// Whether this node's replayed going offline of an agent, who is gone from the replica,
/// lets go of the agent's record here, held for the sign-in `held` (none: it predates
/// sign-ins, or the agent was held without one). A take-back lets go only of the sign-in
/// it takes back: a later one waits for its own event, which follows. Any other going
/// offline (a grace period run out, an account disabled) lets go of whoever is held.
pub(super) fn lets_go(held: Option<ConnId>, event: Named) -> bool {
    match event {
        Named::Nobody => true,
        Named::Here(conn) => held == Some(conn),
        Named::Elsewhere => false,
    }
}

/// Whether this node's replayed going away of an agent (`agent_disconnected`) ends the
/// desk held here for the sign-in `held`: only the take-back of that very sign-in's coming
/// back does. The agent is then away in Redis, so a desk still open on that sign-in — a
/// second tab that took its place before its refusal came, welcomed on its strength —
/// works no more. A page's own closing names nobody (its desk is gone already), and a
/// take-back of an earlier sign-in leaves a newer one's desk, whose own call follows.
pub(super) fn ends_desk(held: Option<ConnId>, event: Named) -> bool {
    match event {
        Named::Here(conn) => held == Some(conn),
        Named::Nobody | Named::Elsewhere => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_id_names_a_connection_of_this_process_only() {
        let id = sign_in_id("p1", ConnId(7));
        assert_eq!(named("p1", Some(&id)), Named::Here(ConnId(7)));
        assert_eq!(named("p2", Some(&id)), Named::Elsewhere);
        assert_eq!(named("p", Some(&id)), Named::Elsewhere);
        assert_eq!(named("p1", Some("p1:x")), Named::Elsewhere);
        assert_eq!(named("p1", None), Named::Nobody);
    }

    /// The fault this rule closes: sign-in 1's call taken back, sign-in 2's made behind
    /// it; the events replay as 1's coming online, its take-back, 2's coming online.
    #[test]
    fn a_sign_in_again_behind_a_take_back_is_welcomed_by_its_own_event_and_outlives_the_take_back() {
        let (first, again) = (ConnId(1), ConnId(2));
        // 1's event, replayed once sign-in 2 waits: no welcome (2's own comes).
        assert!(!welcomes(Some(again), Named::Here(first)));
        // 1's take-back: sign-in 2's record stays.
        assert!(!lets_go(Some(again), Named::Here(first)));
        // 2's event welcomes it.
        assert!(welcomes(Some(again), Named::Here(again)));
        // Replayed before the page signed in again, 1's event welcomes 1 and its take-back
        // lets go of it.
        assert!(welcomes(Some(first), Named::Here(first)));
        assert!(lets_go(Some(first), Named::Here(first)));
    }

    /// The fault this rule closes: sign-in 1's coming back lost and taken back, a second
    /// tab opened meanwhile held (and welcomed) for sign-in 1.
    #[test]
    fn a_coming_backs_take_back_ends_only_the_desk_held_for_its_sign_in() {
        let (first, again) = (ConnId(1), ConnId(2));
        assert!(ends_desk(Some(first), Named::Here(first)));
        // A newer sign-in's desk outlives the take-back of the one before.
        assert!(!ends_desk(Some(again), Named::Here(first)));
        assert!(!ends_desk(None, Named::Here(first)));
        // A page's closing, or another process's call, ends no desk here.
        assert!(!ends_desk(Some(first), Named::Nobody));
        assert!(!ends_desk(Some(first), Named::Elsewhere));
    }

    #[test]
    fn events_naming_nobody_keep_the_rule_before_sign_ins() {
        assert!(welcomes(Some(ConnId(3)), Named::Nobody));
        assert!(!welcomes(None, Named::Nobody));
        assert!(lets_go(Some(ConnId(3)), Named::Nobody));
        assert!(lets_go(None, Named::Nobody));
    }

    #[test]
    fn another_process_under_this_nodes_id_welcomes_and_lets_go_of_nobody() {
        assert!(!welcomes(Some(ConnId(3)), Named::Elsewhere));
        assert!(!lets_go(Some(ConnId(3)), Named::Elsewhere));
        assert!(!lets_go(None, Named::Elsewhere));
    }
}
