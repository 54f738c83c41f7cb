//! The support manager's numbers: per day and category, per agent, and in total,
//! computed from the archive's facts. Pure: facts in (each already given its day in the
//! report's time zone by the adapter), rows out.
//!
//! The definitions (docs/protocol.md "Reports" states them for readers):
//! - a **conversation** is a service chat, counted on the day it was paired (served),
//!   under its category and under the agent who has it now (after transfers, the last);
//! - **abandoned**: a customer who left the line (or never came back within the grace
//!   period) before any agent served them, counted on the day they left;
//! - **wait**: paired − queued; **first response**: the agent's first message − paired
//!   (conversations without one are left out of it, and counted as `unanswered`);
//!   **handle time**: ended − paired, over conversations ended; for a conversation a
//!   person took over from its bot, "queued" is the hand-over and "paired" the person's
//!   taking it, and a bot's lines are no agent's message ([`durations`]); one its bot
//!   kept is never `unanswered`;
//! - percentiles by the nearest-rank method: the p-th percentile of n sorted values is the
//!   value at rank ⌈p × n / 100⌉ (1-based), so it is always a value that occurred; the
//!   median is the 50th;
//! - **rating**: star ratings averaged (and counted), thumbs counted up and down;
//! - **offline messages**: counted on the day they were left, under their category; the
//!   handled ones by the agent who handled them, with the time from left to handled
//!   (marked handled or first answered);
//! - **resolved**: conversations resolved at least once; **reopened**: those of them a
//!   customer came back to after a resolve; the **reopen rate** is reopened ÷ resolved;
//!   **time to resolution**: its last resolve − its opening, over conversations resolved
//!   now;
//! - **bot**: of the conversations a bot opened, those it kept to the end (or keeps) are
//!   **bot resolved**, those it handed over to people **bot handed over**;
//! - **labels**: a row per label with the conversations carrying it (a conversation with two
//!   labels counts in both rows).
//!
//! Why pure: the stores differ in how they find the facts (a scan, an index, a cache),
//! but every one of them hands the same facts here, so the numbers cannot differ by
//! backend, and the rules are tested without a store.

use std::collections::BTreeMap;

use super::bots::Outcome;

/// A calendar day, as the adapter names it in the report's zone ("2026-11-24").
pub type Day = String;

/// A star rating or a thumb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Stars(u8),
    ThumbUp,
    ThumbDown,
}

/// One service conversation's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationFact {
    pub day: Day,
    pub category: String,
    pub agent_id: String,
    pub agent_name: String,
    pub wait_ms: i64,
    pub first_response_ms: Option<i64>,
    pub handle_ms: Option<i64>,
    pub score: Option<Score>,
    /// Resolved at least once.
    pub resolved: bool,
    /// Opened again by its customer after a resolve.
    pub reopened: bool,
    /// From its opening to its last resolve, while it is resolved.
    pub resolution_ms: Option<i64>,
    /// The ids of the labels it carries.
    pub labels: Vec<String>,
    /// Opened by a bot: whether the bot kept it or handed it over to people.
    pub bot: Option<Outcome>,
}

/// A customer who left the line before being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbandonFact {
    pub day: Day,
    pub category: String,
}

/// A message left while nobody could chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineFact {
    pub day: Day,
    pub category: String,
    /// Once handled: who handled it (id, name) and how long after it was left, when known.
    pub handled: Option<(String, String, Option<i64>)>,
}

/// A conversation's times (ms since the epoch) as the archive keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub queued_at: i64,
    pub paired_at: i64,
    /// A person's first line (a bot's are not one).
    pub first_agent_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// Its wait, first response and handle time (ms): from its pairing, or, for a conversation
/// a person took over from its bot, from the hand-over: the person's wait from when the
/// bot put the customer in the line, their first response and handle time from when they
/// took it.
pub fn durations(times: Times, bot: Option<Outcome>) -> (i64, Option<i64>, Option<i64>) {
    let (queued_at, paired_at) = match bot {
        Some(Outcome::HandedOver(Some(taken))) => (taken.waited_from, taken.taken_at),
        _ => (times.queued_at, times.paired_at),
    };
    // No person was to answer one its bot kept, or nobody took over; in one a person took
    // over that was archived before the bots' lines were told apart, a line before the
    // person took it was the bot's.
    let first_response = match bot {
        Some(Outcome::ResolvedByBot | Outcome::HandedOver(None)) => None,
        Some(Outcome::HandedOver(Some(_))) => times
            .first_agent_at
            .filter(|at| *at >= paired_at)
            .map(|at| at - paired_at),
        None => times.first_agent_at.map(|at| at - paired_at),
    };
    (
        paired_at - queued_at,
        first_response,
        times.ended_at.map(|at| at - paired_at),
    )
}

/// The middle and the 90th percentile of a set of durations (ms); `None` when empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spread {
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

/// The numbers of one row (a day and category, an agent, or everything).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub conversations: u64,
    pub abandoned: u64,
    pub wait: Spread,
    pub first_response: Spread,
    /// Conversations with no message from an agent.
    pub unanswered: u64,
    pub handle: Spread,
    pub stars_count: u64,
    /// The average of the star ratings, `None` without any.
    pub stars_average: Option<f64>,
    pub thumbs_up: u64,
    pub thumbs_down: u64,
    pub offline_messages: u64,
    pub offline_handled: u64,
    /// From left to handled, of the handled ones whose time is known.
    pub offline_handle: Spread,
    pub resolved: u64,
    pub reopened: u64,
    /// reopened ÷ resolved; `None` without a resolved conversation.
    pub reopen_rate: Option<f64>,
    pub resolution: Spread,
    /// Conversations a bot opened and kept (never handed over).
    pub bot_resolved: u64,
    /// Conversations a bot opened and handed over to people.
    pub bot_handed_over: u64,
}

/// A row per (day, category) with anything in it, in day then category order.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRow {
    pub day: Day,
    pub category: String,
    pub figures: Figures,
}

/// A row per agent with a conversation or a handled offline message, by agent id.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRow {
    pub agent_id: String,
    pub agent_name: String,
    pub figures: Figures,
}

/// A row per label some conversation carries, by label id.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    pub label: String,
    pub figures: Figures,
}

/// A row per day with anything in it, every category together, in day order.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTotal {
    pub day: Day,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub days: Vec<DayRow>,
    pub day_totals: Vec<DayTotal>,
    pub agents: Vec<AgentRow>,
    pub labels: Vec<LabelRow>,
    pub totals: Figures,
}

/// The nearest-rank `p`-th percentile (0 < p ≤ 100) of `sorted` (ascending).
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).max(1);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

fn spread(mut values: Vec<i64>) -> Spread {
    values.sort_unstable();
    Spread {
        median_ms: percentile(&values, 50),
        p90_ms: percentile(&values, 90),
    }
}

/// What one row gathers before its percentiles are taken.
#[derive(Default)]
struct Tally {
    conversations: u64,
    abandoned: u64,
    waits: Vec<i64>,
    first_responses: Vec<i64>,
    unanswered: u64,
    handles: Vec<i64>,
    stars: Vec<u8>,
    thumbs_up: u64,
    thumbs_down: u64,
    offline_messages: u64,
    offline_handled: u64,
    offline_handles: Vec<i64>,
    resolved: u64,
    reopened: u64,
    resolutions: Vec<i64>,
    bot_resolved: u64,
    bot_handed_over: u64,
}

impl Tally {
    fn conversation(&mut self, c: &ConversationFact) {
        self.conversations += 1;
        self.waits.push(c.wait_ms.max(0));
        match (c.first_response_ms, c.bot) {
            (Some(ms), _) => self.first_responses.push(ms.max(0)),
            // Its bot answered it, or nobody took it over: no person was to.
            (None, Some(Outcome::ResolvedByBot | Outcome::HandedOver(None))) => {}
            (None, _) => self.unanswered += 1,
        }
        if let Some(ms) = c.handle_ms {
            self.handles.push(ms.max(0));
        }
        match c.score {
            Some(Score::Stars(s)) => self.stars.push(s),
            Some(Score::ThumbUp) => self.thumbs_up += 1,
            Some(Score::ThumbDown) => self.thumbs_down += 1,
            None => {}
        }
        self.resolved += u64::from(c.resolved);
        self.reopened += u64::from(c.reopened);
        if let Some(ms) = c.resolution_ms {
            self.resolutions.push(ms.max(0));
        }
        match c.bot {
            Some(Outcome::ResolvedByBot) => self.bot_resolved += 1,
            Some(Outcome::HandedOver(_)) => self.bot_handed_over += 1,
            None => {}
        }
    }

    fn offline_handled(&mut self, ms: Option<i64>) {
        self.offline_handled += 1;
        if let Some(ms) = ms {
            self.offline_handles.push(ms.max(0));
        }
    }

    fn figures(self) -> Figures {
        let stars_count = self.stars.len() as u64;
        let stars_average =
            (stars_count > 0).then(|| self.stars.iter().map(|s| f64::from(*s)).sum::<f64>() / stars_count as f64);
        Figures {
            conversations: self.conversations,
            abandoned: self.abandoned,
            wait: spread(self.waits),
            first_response: spread(self.first_responses),
            unanswered: self.unanswered,
            handle: spread(self.handles),
            stars_count,
            stars_average,
            thumbs_up: self.thumbs_up,
            thumbs_down: self.thumbs_down,
            offline_messages: self.offline_messages,
            offline_handled: self.offline_handled,
            offline_handle: spread(self.offline_handles),
            resolved: self.resolved,
            reopened: self.reopened,
            reopen_rate: (self.resolved > 0).then(|| self.reopened as f64 / self.resolved as f64),
            resolution: spread(self.resolutions),
            bot_resolved: self.bot_resolved,
            bot_handed_over: self.bot_handed_over,
        }
    }
}

/// The report over the given facts.
pub fn report(conversations: &[ConversationFact], abandoned: &[AbandonFact], offline: &[OfflineFact]) -> Report {
    let mut days: BTreeMap<(Day, String), Tally> = BTreeMap::new();
    let mut whole_days: BTreeMap<Day, Tally> = BTreeMap::new();
    let mut agents: BTreeMap<String, (String, Tally)> = BTreeMap::new();
    let mut labels: BTreeMap<String, Tally> = BTreeMap::new();
    let mut totals = Tally::default();
    for c in conversations {
        for label in &c.labels {
            labels.entry(label.clone()).or_default().conversation(c);
        }
        days.entry((c.day.clone(), c.category.clone()))
            .or_default()
            .conversation(c);
        whole_days.entry(c.day.clone()).or_default().conversation(c);
        let agent = agents
            .entry(c.agent_id.clone())
            .or_insert_with(|| (c.agent_name.clone(), Tally::default()));
        agent.1.conversation(c);
        totals.conversation(c);
    }
    for a in abandoned {
        days.entry((a.day.clone(), a.category.clone())).or_default().abandoned += 1;
        whole_days.entry(a.day.clone()).or_default().abandoned += 1;
        totals.abandoned += 1;
    }
    for o in offline {
        let day = days.entry((o.day.clone(), o.category.clone())).or_default();
        let whole_day = whole_days.entry(o.day.clone()).or_default();
        day.offline_messages += 1;
        whole_day.offline_messages += 1;
        totals.offline_messages += 1;
        if let Some((agent_id, agent_name, ms)) = &o.handled {
            day.offline_handled(*ms);
            whole_day.offline_handled(*ms);
            totals.offline_handled(*ms);
            agents
                .entry(agent_id.clone())
                .or_insert_with(|| (agent_name.clone(), Tally::default()))
                .1
                .offline_handled(*ms);
        }
    }
    Report {
        days: days
            .into_iter()
            .map(|((day, category), tally)| DayRow {
                day,
                category,
                figures: tally.figures(),
            })
            .collect(),
        day_totals: whole_days
            .into_iter()
            .map(|(day, tally)| DayTotal {
                day,
                figures: tally.figures(),
            })
            .collect(),
        agents: agents
            .into_iter()
            .map(|(agent_id, (agent_name, tally))| AgentRow {
                agent_id,
                agent_name,
                figures: tally.figures(),
            })
            .collect(),
        labels: labels
            .into_iter()
            .map(|(label, tally)| LabelRow {
                label,
                figures: tally.figures(),
            })
            .collect(),
        totals: totals.figures(),
    }
}

#[cfg(test)]
mod tests;
