//! The rules of agent bots, apart from sockets and storage: whether a joining customer
//! meets a category's bot first or goes straight to its line, when a bot that keeps a
//! customer waiting has had its chance (a reply timer armed by the customer's line and
//! disarmed by the bot's, told apart by an epoch so a stale timer does nothing), and how
//! the archive tells a bot's conversations and their outcome (resolved by the bot, or
//! handed over to people) from the rest.
//!
//! The bot stage comes before the category's line: the routing core never sees a
//! customer talking to a bot, so its guarantees (FIFO, limits, grace) are untouched.

/// Agent ids a bot's conversations are recorded under: `bot:<name>`. No account id has
/// this shape (account ids are UUIDs), so a bot is never mistaken for a person.
pub const BOT_ID_PREFIX: &str = "bot:";

/// The id a bot's conversations carry as their agent's.
pub fn bot_agent_id(name: &str) -> String {
    format!("{BOT_ID_PREFIX}{name}")
}

/// Is `agent_id` a bot's (see [`bot_agent_id`])?
pub fn is_bot_id(agent_id: &str) -> bool {
    agent_id.starts_with(BOT_ID_PREFIX)
}

/// Where a joining customer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// To the bot named here first.
    Bot(String),
    /// To the category's line at once, and why when the category names a bot.
    Line(Option<Handover>),
}

/// Why a conversation left its bot for the category's line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The bot asked to (`handover` frame).
    Asked,
    /// The bot did not answer the customer within the reply timeout.
    Timeout,
    /// The bot's connection ended (or was replaced by nothing) while it held the conversation.
    BotGone,
    /// A call to the bot's webhook failed (refused address, no answer, not 2xx, or the
    /// bot far behind): nobody waits for a bot that cannot be reached.
    Unreachable,
    /// The node holding the conversation died; its customer came back on another node.
    NodeLost,
    /// The category names a bot no node can reach (no socket on a live node, no
    /// webhook): nobody waits for a dead bot.
    NotConnected,
}

impl Handover {
    /// The word frames, logs and the archive's note use.
    pub fn word(self) -> &'static str {
        match self {
            Self::Asked => "asked",
            Self::Timeout => "timeout",
            Self::BotGone => "bot_gone",
            Self::Unreachable => "bot_unreachable",
            Self::NodeLost => "node_lost",
            Self::NotConnected => "bot_not_connected",
        }
    }
}

/// A joining customer's way: the category's bot when the customer's node can reach it
/// (its socket there or on another live node, [`socket_at`], or a webhook it is called
/// at, which every node knows), else its line. On several nodes the bot stage lives on
/// the customer's node, whichever node the bot's answers come in at (they are forwarded
/// there, [`Forwarded`]).
pub fn entry(category_bot: Option<&str>, bot_reachable: bool) -> Entry {
    match category_bot {
        None => Entry::Line(None),
        Some(bot) if bot_reachable => Entry::Bot(bot.to_string()),
        Some(_) => Entry::Line(Some(Handover::NotConnected)),
    }
}

/// Where a bot's action on one of its conversations is carried out when the hub runs as
/// several nodes: the node holding the conversation's bot stage decides it (one place,
/// so one party at a time and one seq order); an action that reaches another node (a
/// webhook bot's HTTP answer behind a load balancer) is forwarded there, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// This node holds the stage.
    Here,
    /// The node named here holds it.
    To(String),
    /// No node holds it (ended, handed over, or never a bot's): `not_your_chat`.
    Nowhere,
}

/// The rule for [`Forwarded`]: `held_here` when this node's hub has the stage;
/// `stage_node` is the node the stage was recorded under (if any), `this_node` this one.
/// A stage recorded under this node but not held here is over (an action is never
/// forwarded back and forth).
pub fn forwarded(held_here: bool, stage_node: Option<&str>, this_node: &str) -> Forwarded {
    match stage_node {
        _ if held_here => Forwarded::Here,
        Some(node) if node != this_node => Forwarded::To(node.to_string()),
        _ => Forwarded::Nowhere,
    }
}

/// Where a socket bot's socket is, for a customer's node on several nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAt {
    /// On this node.
    Here,
    /// On the node named here, alive under the incarnation its socket was recorded in:
    /// the bot's frames go there, its actions come back through [`Forwarded`].
    Node(String),
    /// Nowhere a customer can be served from: no record, or one left by a node that died
    /// or was fenced since (it registered under another incarnation, or not at all), or
    /// one naming this node, which holds no such socket (a socket is never reached
    /// through its own node's record).
    Nowhere,
}

/// The rule for [`SocketAt`]: `here` when this node holds the bot's socket; `recorded`
/// is the node and incarnation the socket was recorded under (if any), `registered` the
/// incarnation that node is registered under now (if it is), `this_node` this one.
pub fn socket_at(here: bool, recorded: Option<(&str, u64)>, registered: Option<u64>, this_node: &str) -> SocketAt {
    match recorded {
        _ if here => SocketAt::Here,
        Some((node, incarnation)) if node != this_node && registered == Some(incarnation) => {
            SocketAt::Node(node.to_string())
        }
        _ => SocketAt::Nowhere,
    }
}

/// Which node ends a dead node's bot conversations whose customers did not come back, and
/// whose: the node whose `node_lost` took the dead node `lost` over (its `heir`), as it
/// runs the grace timers of that node's other customers, sweeps `lost`'s (never its own:
/// a node restarted under its id reaps itself) and every dead node's `lost` still owed
/// (`owed_by_lost`: taken over by `lost` and not swept before it died too) but this
/// node's; other nodes none. Each becomes this node's debt until swept, so a chain of
/// heirs dying one after another never leaves a dead node's bot conversations stuck.
/// Each is ended once the grace period (`RESUME_GRACE_SECS`) from that loss has run out,
/// as a live chat whose customer's node died: closed as a disconnect, the bot told
/// `customer_gone` ([`LOST_STAGE_END`]); one its customer resumed within it was handed
/// over there ([`Handover::NodeLost`]) and is not the sweeper's.
pub fn lost_stages_to_sweep(heir: &str, lost: &str, owed_by_lost: &[String], this_node: &str) -> Vec<String> {
    if heir != this_node {
        return vec![];
    }
    let mut nodes: Vec<String> = owed_by_lost
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(lost))
        .filter(|node| *node != this_node)
        .map(str::to_string)
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// How a dead node's bot conversation whose customer did not come back ends: as one on a
/// live node whose customer dropped (the reason the bot is told).
pub const LOST_STAGE_END: &str = "customer_gone";

/// A socket bot's welcome on several nodes, as on one node: the newest socket of a bot,
/// on whatever node, holds every conversation of the bot's that a socket served, and its
/// `bot_welcome` lists them. Its node asks every other node (each re-points its stages to
/// this node and answers with their views, after the frames it sent before, in the order
/// of its bots channel) and sends the welcome once every node asked has answered, or its
/// wait ran out. Frames for the bot meanwhile are held back and sent after the welcome,
/// but for those a node sent before its answer: its answer's views hold them already.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WelcomeGather {
    /// The nodes asked, once known.
    asked: Option<std::collections::BTreeSet<String>>,
    /// The nodes that answered.
    answered: std::collections::BTreeSet<String>,
}

impl WelcomeGather {
    /// The nodes asked (those listening when asked).
    pub fn asked(&mut self, nodes: impl IntoIterator<Item = String>) {
        self.asked = Some(nodes.into_iter().collect());
    }

    /// Node `node` answered.
    pub fn answered(&mut self, node: &str) {
        self.answered.insert(node.to_string());
    }

    /// Has every node asked answered?
    pub fn ready(&self) -> bool {
        self.asked.as_ref().is_some_and(|asked| asked.is_subset(&self.answered))
    }

    /// Has node `node` answered (a frame from it held back now came after its answer)?
    pub fn has_answered(&self, node: &str) -> bool {
        self.answered.contains(node)
    }

    /// Is a frame held back sent after the welcome? `from` its stage's node (`None`: this
    /// one), `before_answer` whether it came before that node's answer. Not when its
    /// node's answer came after it (the views hold it); when that node never answered (the
    /// wait ran out), it is sent though the bot may not know its conversation.
    pub fn delivered(&self, from: Option<&str>, before_answer: bool) -> bool {
        match from {
            Some(node) if before_answer => !self.answered.contains(node),
            _ => true,
        }
    }
}

/// Does this node keep its socket of a bot when node `newer` says a newer one registered
/// there? Not as a rule (the newest socket replaces the older, as on one node); but when
/// this node's socket just registered too (its welcome still `gathering` the others'
/// conversations) the two crossed, and the node with the greater id keeps its own, so one
/// of the two stays open, never neither.
pub fn keeps_socket(gathering: bool, this_node: &str, newer: &str) -> bool {
    gathering && this_node > newer
}

/// One conversation's reply timer: armed by a customer's line the bot has not answered
/// yet, disarmed by the bot's line. A timer that fires names the epoch it was armed in;
/// it hands over only if the bot said nothing since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyClock {
    epoch: u64,
    armed: bool,
}

impl ReplyClock {
    /// The customer wrote: `Some(epoch)` when a timer must start (none running), else
    /// `None` (the one running counts from their first unanswered line).
    pub fn customer_line(&mut self) -> Option<u64> {
        if self.armed {
            return None;
        }
        self.armed = true;
        self.epoch += 1;
        Some(self.epoch)
    }

    /// The bot answered: whatever timer runs is stale from now on.
    pub fn bot_line(&mut self) {
        self.armed = false;
        self.epoch += 1;
    }

    /// A timer armed in `epoch` fired: hand over?
    pub fn fired(&self, epoch: u64) -> bool {
        self.armed && self.epoch == epoch
    }
}

/// How a bot's conversation ended, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The bot had it to its end and never handed it over (the customer left, or was done,
    /// while with the bot).
    ResolvedByBot,
    /// The bot handed it over: a person took it (measured from then), or nobody did before
    /// the customer left the line (`None`).
    HandedOver(Option<TakenOver>),
}

/// When the person who took a conversation over from its bot is measured from (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TakenOver {
    /// When the customer began to wait for a person: the bot's hand-on to the line.
    pub waited_from: i64,
    /// When a person took it.
    pub taken_at: i64,
}

/// One hand-on of a conversation as the archive keeps it: when, from which agent id, to
/// which (`None`: to a category's line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOn<'a> {
    pub at: i64,
    pub from: &'a str,
    pub to: Option<&'a str>,
}

/// A conversation's bot outcome from the agent it has now, its pairing and its hand-ons
/// (any order); `None` when no bot opened it. It opened with the earliest hand-on's
/// giver, or, never handed on, with the agent it has now. It is handed over once its bot
/// handed it on: to the line (then a person took it from there, or nobody did before the
/// customer left) or to a person. The person is measured from the bot's last hand-on to
/// a line (from the bot's pairing when none is kept: an archive written before those
/// were).
pub fn outcome(agent_now: &str, paired_at: i64, hand_ons: &[HandOn<'_>]) -> Option<Outcome> {
    let opened_by = hand_ons.iter().min_by_key(|h| h.at).map_or(agent_now, |h| h.from);
    if !is_bot_id(opened_by) {
        return None;
    }
    let to_a_person = |h: &&HandOn<'_>| is_bot_id(h.from) && h.to.is_some_and(|to| !is_bot_id(to));
    let Some(taken) = hand_ons.iter().filter(to_a_person).min_by_key(|h| h.at) else {
        let handed_on = hand_ons.iter().any(|h| is_bot_id(h.from));
        return Some(if handed_on {
            Outcome::HandedOver(None)
        } else {
            Outcome::ResolvedByBot
        });
    };
    // The latest even when stamped after the taking: two clocks stamp the two (the
    // customer's node the hand-on, the routing the taking), and a skew of a few
    // milliseconds must not measure the person from the bot's pairing. A bot never gets a
    // conversation back, so its hand-ons to a line all came before a person took it.
    let waited_from = hand_ons
        .iter()
        .filter(|h| is_bot_id(h.from) && h.to.is_none())
        .map(|h| h.at)
        .max()
        .unwrap_or(paired_at);
    Some(Outcome::HandedOver(Some(TakenOver {
        waited_from,
        taken_at: taken.at,
    })))
}

/// The longest bot name: as long as a person's display name. One limit wherever a bot
/// is named (the token acting as it, the category routing to it).
pub const NAME_MAX_CHARS: usize = 100;

/// A bot's name as given, checked ([`crate::core::names::checked_name`] to
/// [`NAME_MAX_CHARS`]) and trimmed.
pub fn checked_name(raw: &str) -> Result<String, crate::core::names::NameError> {
    crate::core::names::checked_name(raw, NAME_MAX_CHARS)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_category_with_a_connected_bot_meets_it_first() {
        assert_eq!(entry(Some("Faq"), true), Entry::Bot("Faq".into()));
        assert_eq!(entry(Some("Faq"), false), Entry::Line(Some(Handover::NotConnected)));
        assert_eq!(entry(None, true), Entry::Line(None));
    }

    #[test]
    fn a_bots_action_goes_to_the_node_holding_the_stage_once() {
        assert_eq!(forwarded(true, None, "a"), Forwarded::Here);
        assert_eq!(forwarded(true, Some("b"), "a"), Forwarded::Here);
        assert_eq!(forwarded(false, Some("b"), "a"), Forwarded::To("b".into()));
        assert_eq!(
            forwarded(false, Some("a"), "a"),
            Forwarded::Nowhere,
            "never back to itself"
        );
        assert_eq!(forwarded(false, None, "a"), Forwarded::Nowhere);
    }

    #[test]
    fn a_bots_socket_is_reached_on_a_live_node_under_its_incarnation() {
        assert_eq!(socket_at(true, None, None, "a"), SocketAt::Here);
        assert_eq!(socket_at(true, Some(("b", 3)), Some(3), "a"), SocketAt::Here);
        assert_eq!(
            socket_at(false, Some(("b", 3)), Some(3), "a"),
            SocketAt::Node("b".into())
        );
        assert_eq!(socket_at(false, Some(("b", 3)), None, "a"), SocketAt::Nowhere, "dead");
        assert_eq!(
            socket_at(false, Some(("b", 3)), Some(4), "a"),
            SocketAt::Nowhere,
            "fenced"
        );
        assert_eq!(
            socket_at(false, Some(("a", 3)), Some(3), "a"),
            SocketAt::Nowhere,
            "never itself"
        );
        assert_eq!(socket_at(false, None, None, "a"), SocketAt::Nowhere);
    }

    #[test]
    fn the_heir_of_a_dead_heir_sweeps_what_it_owed() {
        let owed = vec!["a".to_string()];
        assert_eq!(lost_stages_to_sweep("c", "b", &[], "c"), ["b"], "the heir sweeps");
        assert_eq!(lost_stages_to_sweep("c", "b", &owed, "c"), ["a", "b"]);
        assert!(
            lost_stages_to_sweep("d", "b", &owed, "c").is_empty(),
            "another node took it over"
        );
        assert_eq!(
            lost_stages_to_sweep("a", "a", &["b".to_string(), "a".to_string()], "a"),
            ["b"],
            "restarted, a node sweeps what its previous incarnation owed, never its own"
        );
    }

    #[test]
    fn a_welcome_waits_for_every_node_asked_and_drops_what_their_views_hold() {
        let mut gather = WelcomeGather::default();
        gather.answered("b");
        assert!(!gather.ready(), "not before the nodes asked are known");
        gather.asked(["b".to_string(), "c".to_string()]);
        assert!(!gather.ready());
        assert!(!gather.delivered(Some("b"), true), "b's answer holds it");
        assert!(gather.delivered(Some("b"), false), "after b's answer");
        assert!(gather.delivered(Some("c"), true), "c never answered: sent as it came");
        assert!(gather.delivered(None, false), "this node's own");
        gather.answered("c");
        assert!(gather.ready());
        assert!(!gather.delivered(Some("c"), true));
        let mut alone = WelcomeGather::default();
        alone.asked([]);
        assert!(alone.ready(), "nobody else to ask");
    }

    #[test]
    fn of_two_sockets_registering_at_once_one_stays() {
        assert!(!keeps_socket(false, "b", "a"), "an older socket is replaced");
        assert!(keeps_socket(true, "b", "a"));
        assert!(!keeps_socket(true, "a", "b"));
        for (x, y) in [("a", "b"), ("b", "a"), ("alpha", "beta")] {
            assert!(
                keeps_socket(true, x, y) != keeps_socket(true, y, x),
                "exactly one of {x}, {y}"
            );
        }
    }

    #[test]
    fn bot_ids_are_told_apart_from_accounts() {
        assert_eq!(bot_agent_id("Faq"), "bot:Faq");
        assert!(is_bot_id("bot:Faq"));
        assert!(!is_bot_id("0190a6d2-0000-7000-8000-000000000000"));
    }

    fn hand_on(at: i64, from: &'static str, to: Option<&'static str>) -> HandOn<'static> {
        HandOn { at, from, to }
    }

    #[test]
    fn a_person_taking_over_from_a_bot_is_measured_from_its_hand_over() {
        // A person's conversation, handed to a colleague: no bot in it.
        assert_eq!(outcome("ann", 10, &[hand_on(20, "bob", Some("ann"))]), None);
        // The bot kept it; or put it in a line nobody took it from: handed over all the same.
        assert_eq!(outcome("bot:Faq", 10, &[]), Some(Outcome::ResolvedByBot));
        let left_the_line = [hand_on(20, "bot:Faq", None)];
        assert_eq!(outcome("bot:Faq", 10, &left_the_line), Some(Outcome::HandedOver(None)));
        // Handed to the line at 20, taken by Ann at 50, then by Bob at 90: Ann at 20..50.
        let taken = [
            hand_on(90, "ann", Some("bob")),
            hand_on(50, "bot:Faq", Some("ann")),
            hand_on(20, "bot:Faq", None),
        ];
        let ann = TakenOver {
            waited_from: 20,
            taken_at: 50,
        };
        assert_eq!(outcome("bob", 10, &taken), Some(Outcome::HandedOver(Some(ann))));
        // The hand-on stamped a moment after the taking (two nodes' clocks): still the one.
        let skewed = [hand_on(52, "bot:Faq", None), hand_on(50, "bot:Faq", Some("ann"))];
        let at_once = TakenOver {
            waited_from: 52,
            taken_at: 50,
        };
        assert_eq!(outcome("ann", 10, &skewed), Some(Outcome::HandedOver(Some(at_once))));
        // An archive without the hand-on to the line: measured from the bot's pairing.
        let unrecorded = [hand_on(50, "bot:Faq", Some("ann"))];
        let from_pairing = TakenOver {
            waited_from: 10,
            taken_at: 50,
        };
        assert_eq!(
            outcome("ann", 10, &unrecorded),
            Some(Outcome::HandedOver(Some(from_pairing)))
        );
    }

    #[test]
    fn a_timer_after_the_bots_answer_is_stale() {
        let mut clock = ReplyClock::default();
        let first = clock.customer_line().unwrap();
        assert_eq!(clock.customer_line(), None, "one timer at a time");
        clock.bot_line();
        assert!(!clock.fired(first));
        let second = clock.customer_line().unwrap();
        assert!(!clock.fired(first), "an older timer never hands over");
        assert!(clock.fired(second));
    }

    proptest! {
        /// Nodes die one after another, each taken over by a live node, and a node sweeps
        /// (clearing its debt) only at some steps: whatever the order, every dead node's bot
        /// stages are swept or owed by a live node, never by a dead one, and owed once.
        #[test]
        fn a_dead_nodes_stages_are_always_owed_by_a_live_node_until_swept(
            steps in prop::collection::vec((0usize..6, 0usize..6, any::<bool>()), 0..40)
        ) {
            let nodes: Vec<String> = (0..6).map(|n| format!("n{n}")).collect();
            let mut alive: Vec<bool> = vec![true; 6];
            let mut owed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            let mut swept: std::collections::BTreeSet<String> = Default::default();
            for (dies, heir, sweeps) in steps {
                if sweeps {
                    // The heir finishes its sweeps: its debt is cleared.
                    if alive[heir] {
                        swept.extend(owed.remove(&nodes[heir]).unwrap_or_default());
                    }
                    continue;
                }
                if !alive[dies] || !alive[heir] || dies == heir {
                    continue;
                }
                alive[dies] = false;
                let owed_by_lost = owed.remove(&nodes[dies]).unwrap_or_default();
                for node in &nodes {
                    // Every node replays the loss; only the heir takes anything on.
                    let taken = lost_stages_to_sweep(&nodes[heir], &nodes[dies], &owed_by_lost, node);
                    prop_assert!(node == &nodes[heir] || taken.is_empty());
                    if !taken.is_empty() {
                        owed.entry(node.clone()).or_default().extend(taken);
                    }
                }
            }
            for (n, node) in nodes.iter().enumerate() {
                if alive[n] {
                    continue;
                }
                let owers: Vec<&String> = owed.iter().filter(|(_, o)| o.contains(node)).map(|(k, _)| k).collect();
                prop_assert!(swept.contains(node) || owers.len() == 1, "{node} owed by {owers:?}");
                for ower in owers {
                    prop_assert!(alive[nodes.iter().position(|n| n == ower).unwrap()]);
                }
            }
        }

        /// Whatever the order of lines and timers, a timer hands over exactly when the
        /// customer's earliest unanswered line armed it and the bot has said nothing since.
        #[test]
        fn a_timer_hands_over_only_an_unanswered_customer(steps in prop::collection::vec(0u8..3, 0..60)) {
            let mut clock = ReplyClock::default();
            let mut timers: Vec<u64> = vec![];
            // The model: the epoch of the running timer, if the customer waits for an answer.
            let mut waiting: Option<u64> = None;
            for step in steps {
                match step {
                    0 => {
                        if let Some(epoch) = clock.customer_line() {
                            prop_assert!(waiting.is_none());
                            waiting = Some(epoch);
                            timers.push(epoch);
                        }
                        prop_assert!(waiting.is_some());
                    }
                    1 => {
                        clock.bot_line();
                        waiting = None;
                    }
                    _ => {
                        if let Some(epoch) = timers.pop() {
                            prop_assert_eq!(clock.fired(epoch), waiting == Some(epoch));
                        }
                    }
                }
            }
        }
    }
}
