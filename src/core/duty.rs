//! A duty one node of a cluster does at a time (reading the desk's mailbox): which node
//! may take it, from what Redis holds. The duty is recorded as the node and the
//! incarnation that took it; the record counts only while that node is a member under
//! that incarnation, so a holder that died (and was reaped) or was fenced (and registered
//! anew) gives it up without anyone having to release it, and no expiry of its own is
//! needed: the duty lasts exactly as long as its holder's membership.
//!
//! The cluster's script (`cluster::duty`) applies this rule atomically in Redis; this is
//! its oracle, tested on its own.

/// Whether node `me` (its name and incarnation) holds the duty after asking for it:
/// `me_registered`, whether Redis has it a member under that very incarnation (a fenced
/// or reaped node takes nothing); `holder`, the record; `holder_registered`, the
/// incarnation Redis has the holder's name registered under, if any.
pub fn takes(
    me: (&str, u64),
    me_registered: bool,
    holder: Option<(&str, u64)>,
    holder_registered: Option<u64>,
) -> bool {
    if !me_registered {
        return false;
    }
    match holder {
        None => true,
        Some(held) if held == me => true,
        Some((_, incarnation)) => holder_registered != Some(incarnation),
    }
}

#[cfg(test)]
mod tests {
    use super::takes;

    #[test]
    fn a_duty_passes_only_from_a_holder_that_is_no_longer_a_member_under_its_incarnation() {
        let me = ("beta", 4);
        assert!(takes(me, true, None, None), "nobody holds it");
        assert!(takes(me, true, Some(("beta", 4)), Some(4)), "it is mine");
        assert!(
            !takes(me, true, Some(("alpha", 2)), Some(2)),
            "alpha is alive and holds it"
        );
        assert!(takes(me, true, Some(("alpha", 2)), None), "alpha died and was reaped");
        assert!(
            takes(me, true, Some(("alpha", 2)), Some(3)),
            "alpha was fenced and came back as another incarnation"
        );
        assert!(
            takes(me, true, Some(("beta", 3)), Some(4)),
            "my own earlier incarnation's record"
        );
        assert!(!takes(me, false, None, None), "a node that is no member takes nothing");
        assert!(!takes(me, false, Some(("beta", 4)), Some(5)), "nor keeps what it had");
    }
}
