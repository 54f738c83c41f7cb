//! A conversation beyond its live chat: its status, the agent whose list it is in, and what
//! a message, a status change, a customer coming or going, or a snooze running out does to
//! it. Pure: the caller passes the time and carries out what comes back.
//!
//! The live chat is one state of a conversation: `Open` with its customer present and its
//! holder paired with them. The routing core still decides every live pairing (limits,
//! FIFO, work conservation); this module only says *where* a returning customer should be
//! routed ([`Route`]) and keeps what outlives the live chat.
//!
//! Invariants (checked by the property tests in `conversation/tests.rs`):
//! - a conversation is in at most one agent's list (`holder` is one agent or none), and
//!   only [`Conversation::assigned`] — a pairing the routing core made — changes who,
//!   or [`Conversation::reassign`] while no customer is live in it (so a live chat's agent
//!   is always the routing core's pairing);
//! - a refused event changes nothing;
//! - a customer's message always leaves it `Open`; a snooze is always for a time after
//!   it was set and no further than [`Rules::max_snooze_ms`];
//! - a returning customer is preferred to their holder only within [`Rules::sticky_ms`]
//!   of the holder's last turn in it, and never while another session of theirs is live
//!   (a conversation has at most one live customer session);
//! - `seq` is one gapless count across all the conversation's live sessions;
//! - `reopens <= resolutions`: a reopen counts only a conversation that was resolved.
//! - a "snooze ended" mark (`snooze_ended_at`) is set only by a snooze running out, and
//!   held only while it is open: any other status change (a person's, a customer's line
//!   reopening it) replaces it, and its holder opening it clears it.
//!
//! What is absent on purpose: no capacity here. Only live conversations count against an
//! agent's limit, and the routing core counts them; a conversation parked in a list costs
//! its holder nothing.

use super::routing::AgentId;

pub mod labels;
pub mod line_authors;

/// Where a conversation stands for the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Live, waiting for an agent, or left by its customer with the desk's turn to act.
    Open,
    /// Waiting on the customer: a message of theirs opens it again.
    Pending,
    /// Parked until `until` (ms since the epoch): then open again, to its holder's attention.
    Snoozed { until: i64 },
    /// Done: a message of the customer's opens it again (a reopen).
    Resolved,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Snoozed { .. } => "snoozed",
            Status::Resolved => "resolved",
        }
    }
}

/// Who asks for a status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// An agent: only the holder may change the status.
    Agent(&'a AgentId),
    /// An admin: any conversation.
    Admin,
    /// The customer: only to end it (`Resolved`), as pressing "end" does.
    Customer,
}

/// Why a status change or a message was refused (nothing changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The agent does not hold the conversation (and is not an admin).
    NotYours,
    /// A customer may only end (resolve) a conversation.
    NotForCustomers,
    /// A snooze until now or earlier.
    SnoozeInPast,
    /// A snooze further than [`Rules::max_snooze_ms`].
    SnoozeTooFar,
    /// A second live session of the customer while one is live.
    AlreadyLive,
    /// A label the desk does not define.
    UnknownLabel,
    /// More labels than [`labels::MAX_LABELS`] on one conversation.
    TooManyLabels,
    /// A reassignment while its customer is live in it: the live chat's agent is the
    /// routing core's to decide (a transfer moves a live chat).
    Live,
    /// "Assign to me" on a conversation someone took first.
    AlreadyAssigned,
}

impl Refusal {
    /// The wire's error code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotYours => "not_your_conversation",
            Refusal::NotForCustomers => "not_allowed",
            Refusal::SnoozeInPast => "snooze_in_past",
            Refusal::SnoozeTooFar => "snooze_too_far",
            Refusal::AlreadyLive => "already_live",
            Refusal::UnknownLabel => "unknown_label",
            Refusal::TooManyLabels => "too_many_labels",
            Refusal::Live => "conversation_live",
            Refusal::AlreadyAssigned => "already_assigned",
        }
    }
}

/// The desk's settings these rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long after its holder's last turn a returning customer goes back to that holder
    /// (when they can take a chat now) rather than into the line.
    pub sticky_ms: i64,
    /// How far ahead a snooze may be set.
    pub max_snooze_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            // A week: a customer who answers on Monday what was asked on Friday gets the
            // same agent.
            sticky_ms: 7 * 24 * 3600 * 1000,
            // A year: further is a typo, not a plan.
            max_snooze_ms: 365 * 24 * 3600 * 1000,
        }
    }
}

/// Where a customer who comes back live to a conversation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To this agent when they can take a chat now (connected, available, below their
    /// limit), otherwise into the category's line like anyone new.
    Prefer(AgentId),
    /// Into the category's line.
    Line,
}

/// What a status change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub from: Status,
    pub to: Status,
}

/// What of a conversation outlives its sessions (what a store keeps of it). The rest —
/// whether a customer session is live, the last `seq` — the caller knows from the hub and
/// the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub status: Status,
    pub holder: Option<AgentId>,
    pub holder_turn_at: i64,
    pub opened_at: i64,
    /// When its status last changed.
    pub status_since: i64,
    pub resolved_at: Option<i64>,
    pub resolutions: u32,
    pub reopens: u32,
    /// When a snooze running out opened it again, until its holder opened it since.
    pub snooze_ended_at: Option<i64>,
}

/// A conversation's lasting state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    status: Status,
    holder: Option<AgentId>,
    /// When the holder last had their turn (was paired with it, wrote into it, set its
    /// status): what the sticky preference counts from.
    holder_turn_at: i64,
    /// A live customer session is attached.
    live: bool,
    /// The highest `seq` stamped, over all live sessions.
    last_seq: u64,
    opened_at: i64,
    /// When its status last changed: a change decided before that, and reported late
    /// (another node's report of its chat's end), does not undo a newer one.
    status_since: i64,
    resolved_at: Option<i64>,
    resolutions: u32,
    reopens: u32,
    /// When the snooze timer (not a person, not a customer) last opened it again, while
    /// its holder has not opened it since: their list marks it "Snooze ended".
    snooze_ended_at: Option<i64>,
}

impl Conversation {
    /// A conversation that starts now, waiting for an agent: a join, or an offline message.
    pub fn new(now: i64) -> Self {
        Self {
            status: Status::Open,
            holder: None,
            holder_turn_at: now,
            live: false,
            last_seq: 0,
            opened_at: now,
            status_since: now,
            resolved_at: None,
            resolutions: 0,
            reopens: 0,
            snooze_ended_at: None,
        }
    }

    /// A conversation archived before conversations had statuses: it ended, so it is
    /// resolved, held by the agent who had it last.
    pub fn migrated(holder: Option<AgentId>, opened_at: i64, ended_at: i64, last_seq: u64) -> Self {
        Self {
            status: Status::Resolved,
            holder,
            holder_turn_at: ended_at,
            live: false,
            last_seq,
            opened_at,
            status_since: ended_at,
            resolved_at: Some(ended_at),
            resolutions: 1,
            reopens: 0,
            snooze_ended_at: None,
        }
    }

    /// The conversation as kept, with what the caller knows of its sessions.
    pub fn from_kept(kept: Kept, live: bool, last_seq: u64) -> Self {
        Self {
            status: kept.status,
            holder: kept.holder,
            holder_turn_at: kept.holder_turn_at,
            live,
            last_seq,
            opened_at: kept.opened_at,
            status_since: kept.status_since,
            resolved_at: kept.resolved_at,
            resolutions: kept.resolutions,
            reopens: kept.reopens,
            snooze_ended_at: kept.snooze_ended_at,
        }
    }

    /// What of it is kept between sessions.
    pub fn kept(&self) -> Kept {
        Kept {
            status: self.status,
            holder: self.holder.clone(),
            holder_turn_at: self.holder_turn_at,
            opened_at: self.opened_at,
            status_since: self.status_since,
            resolved_at: self.resolved_at,
            resolutions: self.resolutions,
            reopens: self.reopens,
            snooze_ended_at: self.snooze_ended_at,
        }
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn holder(&self) -> Option<&AgentId> {
        self.holder.as_ref()
    }

    pub fn is_live(&self) -> bool {
        self.live
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn resolutions(&self) -> u32 {
        self.resolutions
    }

    pub fn reopens(&self) -> u32 {
        self.reopens
    }

    pub fn status_since(&self) -> i64 {
        self.status_since
    }

    /// When a snooze running out opened it again, if its holder has not opened it since.
    pub fn snooze_ended_at(&self) -> Option<i64> {
        self.snooze_ended_at
    }

    /// `agent` opened it (looked at it in their console): when they hold it, it is no
    /// longer marked "snooze ended". Returns whether that changed anything.
    pub fn opened_by(&mut self, agent: &AgentId) -> bool {
        if self.holder.as_ref() != Some(agent) || self.snooze_ended_at.is_none() {
            return false;
        }
        self.snooze_ended_at = None;
        true
    }

    /// From its opening to its last resolution, while it is resolved.
    pub fn time_to_resolution(&self) -> Option<i64> {
        match self.status {
            Status::Resolved => self.resolved_at.map(|at| at - self.opened_at),
            _ => None,
        }
    }

    /// The routing core paired it with `agent` (a first pairing, a return, a transfer):
    /// it is in their list from now on, and no longer in anyone else's.
    pub fn assigned(&mut self, agent: AgentId, now: i64) {
        self.holder = Some(agent);
        self.holder_turn_at = now;
    }

    /// A live session of the customer attaches (a join into it, a return). Refused while one
    /// is live: the adapter closes the older session first (a second tab takes over).
    pub fn customer_arrived(&mut self) -> Result<(), Refusal> {
        if self.live {
            return Err(Refusal::AlreadyLive);
        }
        self.live = true;
        Ok(())
    }

    /// The live session is gone for good (left the page and the grace period ran out, or
    /// the customer ended it). The conversation stays as it is, in its holder's list: what
    /// the agent writes meanwhile waits for the customer's return.
    pub fn customer_left(&mut self) {
        self.live = false;
    }

    /// Where a customer who comes back live should be routed; `None` when no routing is
    /// needed (their holder is still paired with the live session).
    pub fn route_on_return(&self, holder_paired: bool, now: i64, rules: &Rules) -> Option<Route> {
        if holder_paired {
            return None;
        }
        Some(match &self.holder {
            Some(agent) if now - self.holder_turn_at <= rules.sticky_ms => Route::Prefer(agent.clone()),
            _ => Route::Line,
        })
    }

    /// The customer came back to write into it (they chose to continue it): open again if
    /// it was not (a reopen when it was resolved), as their message will. Returns the
    /// change, if any.
    pub fn customer_returned(&mut self, now: i64) -> Option<Change> {
        let from = self.status;
        if from == Status::Open {
            return None;
        }
        if from == Status::Resolved {
            self.reopens += 1;
        }
        self.enter(Status::Open, now);
        Some(Change { from, to: Status::Open })
    }

    /// The customer wrote into it: open again if it was not (a reopen when it was
    /// resolved). Returns the change, if any.
    pub fn customer_wrote(&mut self, seq: u64, now: i64) -> Option<Change> {
        self.stamp(seq);
        self.customer_returned(now)
    }

    /// The customer wrote into its live chat at `at` (the chat's transcript counts the
    /// seq): open again if it was not, as [`Conversation::customer_wrote`], unless its
    /// status was set after the line — a line's news can reach the store after an agent's
    /// later `pending` (another node's), which stands. Returns the change, if any.
    pub fn customer_line(&mut self, at: i64) -> Option<Change> {
        if self.status_since > at {
            return None;
        }
        self.customer_returned(at)
    }

    /// Its live chat was ended on purpose at `ended_at`: resolved, as ending a chat means,
    /// unless its status changed after that. The end can be decided on one node and
    /// applied after an agent's snooze or the customer's return decided later on another:
    /// that newer status stands. Returns the change, if any.
    pub fn chat_ended(&mut self, ended_at: i64, rules: &Rules) -> Option<Change> {
        if self.status_since > ended_at {
            return None;
        }
        self.set_status(Actor::Admin, Status::Resolved, ended_at, rules)
            .expect("an admin may always resolve")
    }

    /// An agent wrote into it. Only its holder may, live or not; the status stays (an agent
    /// sets statuses on purpose, never as a side effect of a reply).
    pub fn agent_wrote(&mut self, agent: &AgentId, seq: u64, now: i64) -> Result<(), Refusal> {
        if self.holder.as_ref() != Some(agent) {
            return Err(Refusal::NotYours);
        }
        self.stamp(seq);
        self.holder_turn_at = now;
        // Writing into it, they have it open.
        self.snooze_ended_at = None;
        Ok(())
    }

    /// `by` puts it in `to`'s list at `now` while no customer is live in it (the caller
    /// checked that `to` serves its category). Its holder hands it to anyone, an admin
    /// moves any, and any agent takes an unassigned one for themselves ("Assign to me");
    /// taking one someone holds already is [`Refusal::AlreadyAssigned`] (the second of two
    /// at once). Returns whether it changed (assigned to its holder already: no change).
    /// The sticky preference counts from now, for the new holder.
    pub fn reassign(&mut self, by: Actor, to: &AgentId, now: i64) -> Result<bool, Refusal> {
        if self.live {
            return Err(Refusal::Live);
        }
        match (by, &self.holder) {
            (Actor::Customer, _) => return Err(Refusal::NotForCustomers),
            (Actor::Admin, _) => {}
            (Actor::Agent(agent), Some(holder)) if holder == agent => {}
            (Actor::Agent(agent), None) if agent == to => {}
            (Actor::Agent(agent), Some(_)) if agent == to => return Err(Refusal::AlreadyAssigned),
            (Actor::Agent(_), _) => return Err(Refusal::NotYours),
        }
        if self.holder.as_ref() == Some(to) {
            return Ok(false);
        }
        self.holder = Some(to.clone());
        self.holder_turn_at = now;
        Ok(true)
    }

    /// The next seq of the conversation, for whichever session stamps the next message.
    pub fn next_seq(&self) -> u64 {
        self.last_seq + 1
    }

    fn stamp(&mut self, seq: u64) {
        debug_assert_eq!(seq, self.last_seq + 1, "seq is gapless across sessions");
        self.last_seq = seq;
    }

    /// `by` sets the status to `to` at `now`. Setting the status it has is no change (`Ok(None)`).
    pub fn set_status(&mut self, by: Actor, to: Status, now: i64, rules: &Rules) -> Result<Option<Change>, Refusal> {
        match by {
            Actor::Customer if to == Status::Resolved => {}
            by => holder_or_admin(self.holder.as_ref(), by)?,
        }
        if let Status::Snoozed { until } = to {
            if until <= now {
                return Err(Refusal::SnoozeInPast);
            }
            if until - now > rules.max_snooze_ms {
                return Err(Refusal::SnoozeTooFar);
            }
        }
        if let Actor::Agent(_) = by {
            self.holder_turn_at = now;
        }
        let from = self.status;
        if from == to {
            return Ok(None);
        }
        self.enter(to, now);
        if to == Status::Resolved {
            self.resolutions += 1;
            self.resolved_at = Some(now);
        }
        Ok(Some(Change { from, to }))
    }

    /// The clock reached `now`: a snooze that ran out opens the conversation again, to its
    /// holder's attention (returned; `None` holder: the unassigned list's).
    pub fn tick(&mut self, now: i64) -> Option<Woken> {
        match self.status {
            Status::Snoozed { until } if until <= now => {
                self.enter(Status::Open, now);
                self.snooze_ended_at = Some(now);
                Some(Woken {
                    change: Change {
                        from: Status::Snoozed { until },
                        to: Status::Open,
                    },
                    attention: self.holder.clone(),
                })
            }
            _ => None,
        }
    }

    /// Every status change but a snooze running out is someone's doing: the snooze's
    /// "ended" mark goes with the status it marked.
    fn enter(&mut self, status: Status, now: i64) {
        self.status = status;
        self.status_since = now;
        self.snooze_ended_at = None;
    }

    /// When [`Conversation::tick`] next has something to do.
    pub fn wakes_at(&self) -> Option<i64> {
        match self.status {
            Status::Snoozed { until } => Some(until),
            _ => None,
        }
    }
}

/// Only a conversation's holder, or an admin, changes it on the desk's side.
pub fn holder_or_admin(holder: Option<&AgentId>, by: Actor) -> Result<(), Refusal> {
    match by {
        Actor::Admin => Ok(()),
        Actor::Agent(agent) if holder == Some(agent) => Ok(()),
        Actor::Agent(_) => Err(Refusal::NotYours),
        Actor::Customer => Err(Refusal::NotForCustomers),
    }
}

/// A snooze that ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Woken {
    pub change: Change,
    /// The agent to tell (their list shows it again, marked).
    pub attention: Option<AgentId>,
}

#[cfg(test)]
mod tests;

/// A node heard, after recording the customer's last line at `last_line_at`, that its
/// conversation was parked (pending, snoozed or resolved) since `parked_since`: the time of
/// that line when the line came at or after the park, so it opens the conversation again
/// ([`Conversation::customer_line`] decides on the stored record, once); `None` when the
/// line came before the park (the park stands) or none was recorded. A node learns a
/// status late — its read of a chat's log made anew, or another node's change on the bus,
/// can come after a line it stamped — and the line must open what it came into.
pub fn line_opens_what_it_heard_of_late(parked_since: i64, last_line_at: Option<i64>) -> Option<i64> {
    last_line_at.filter(|at| *at >= parked_since)
}
