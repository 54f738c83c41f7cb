use proptest::prelude::*;

use super::*;

fn conv(
    day: &str,
    category: &str,
    agent: &str,
    wait: i64,
    first: Option<i64>,
    handle: Option<i64>,
) -> ConversationFact {
    ConversationFact {
        day: day.into(),
        category: category.into(),
        agent_id: agent.into(),
        agent_name: agent.to_uppercase(),
        wait_ms: wait,
        first_response_ms: first,
        handle_ms: handle,
        score: None,
        resolved: false,
        reopened: false,
        resolution_ms: None,
        labels: Vec::new(),
        bot: None,
    }
}

#[test]
fn percentiles_are_nearest_rank_values_that_occurred() {
    assert_eq!(percentile(&[], 50), None);
    assert_eq!(percentile(&[7], 50), Some(7));
    assert_eq!(percentile(&[7], 90), Some(7));
    // n = 4: the median is rank ⌈2⌉ = 2, the 90th rank ⌈3.6⌉ = 4.
    assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
    assert_eq!(percentile(&[1, 2, 3, 4], 90), Some(4));
    // n = 10: ranks 5 and 9.
    let ten: Vec<i64> = (1..=10).map(|v| v * 10).collect();
    assert_eq!(percentile(&ten, 50), Some(50));
    assert_eq!(percentile(&ten, 90), Some(90));
    // n = 11: ranks ⌈5.5⌉ = 6 and ⌈9.9⌉ = 10.
    let eleven: Vec<i64> = (1..=11).collect();
    assert_eq!(percentile(&eleven, 50), Some(6));
    assert_eq!(percentile(&eleven, 90), Some(10));
}

#[test]
fn a_small_desk_by_hand() {
    let mut a = conv("2026-11-02", "sales", "ann", 30_000, Some(5_000), Some(600_000));
    a.score = Some(Score::Stars(5));
    let mut b = conv("2026-11-02", "sales", "bob", 90_000, Some(15_000), Some(300_000));
    b.score = Some(Score::Stars(2));
    let c = conv("2026-11-02", "sales", "ann", 10_000, None, None);
    let mut d = conv("2026-11-03", "billing", "ann", 60_000, Some(1_000), Some(120_000));
    d.score = Some(Score::ThumbUp);
    let abandoned = [
        AbandonFact {
            day: "2026-11-02".into(),
            category: "sales".into(),
        },
        AbandonFact {
            day: "2026-11-04".into(),
            category: "billing".into(),
        },
    ];
    let offline = [
        OfflineFact {
            day: "2026-11-03".into(),
            category: "billing".into(),
            handled: Some(("bob".into(), "BOB".into(), Some(3_600_000))),
        },
        OfflineFact {
            day: "2026-11-03".into(),
            category: "billing".into(),
            handled: None,
        },
    ];
    let r = report(&[a, b, c, d], &abandoned, &offline);

    let keys: Vec<(&str, &str)> = r.days.iter().map(|d| (d.day.as_str(), d.category.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("2026-11-02", "sales"),
            ("2026-11-03", "billing"),
            ("2026-11-04", "billing")
        ]
    );
    let sales = &r.days[0].figures;
    assert_eq!(sales.conversations, 3);
    assert_eq!(sales.abandoned, 1);
    // waits 10, 30, 90 s: median rank 2 = 30 s, 90th rank 3 = 90 s.
    assert_eq!(sales.wait.median_ms, Some(30_000));
    assert_eq!(sales.wait.p90_ms, Some(90_000));
    // first responses 5 and 15 s (one unanswered): median rank 1.
    assert_eq!(sales.first_response.median_ms, Some(5_000));
    assert_eq!(sales.first_response.p90_ms, Some(15_000));
    assert_eq!(sales.unanswered, 1);
    assert_eq!(sales.handle.median_ms, Some(300_000));
    assert_eq!(sales.stars_count, 2);
    assert_eq!(sales.stars_average, Some(3.5));
    let billing = &r.days[1].figures;
    assert_eq!(billing.conversations, 1);
    assert_eq!(billing.thumbs_up, 1);
    assert_eq!(billing.stars_average, None);
    assert_eq!(billing.offline_messages, 2);
    assert_eq!(billing.offline_handled, 1);
    assert_eq!(billing.offline_handle.median_ms, Some(3_600_000));
    assert_eq!(r.days[2].figures.abandoned, 1);
    let whole: Vec<(&str, u64, u64)> = r
        .day_totals
        .iter()
        .map(|d| (d.day.as_str(), d.figures.conversations, d.figures.abandoned))
        .collect();
    assert_eq!(
        whole,
        [("2026-11-02", 3, 1), ("2026-11-03", 1, 0), ("2026-11-04", 0, 1)]
    );
    assert_eq!(r.days[2].figures.conversations, 0);

    let agents: Vec<&str> = r.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(agents, ["ann", "bob"]);
    assert_eq!(r.agents[0].agent_name, "ANN");
    assert_eq!(r.agents[0].figures.conversations, 3);
    assert_eq!(r.agents[0].figures.abandoned, 0);
    assert_eq!(r.agents[1].figures.conversations, 1);
    assert_eq!(r.agents[1].figures.offline_handled, 1);

    assert_eq!(r.totals.conversations, 4);
    assert_eq!(r.totals.abandoned, 2);
    assert_eq!(r.totals.offline_messages, 2);
    // waits 10, 30, 60, 90: median rank 2 = 30, 90th rank 4 = 90.
    assert_eq!(r.totals.wait.median_ms, Some(30_000));
    assert_eq!(r.totals.wait.p90_ms, Some(90_000));
}

#[test]
fn an_empty_archive_is_an_empty_report() {
    let r = report(&[], &[], &[]);
    assert!(r.days.is_empty() && r.agents.is_empty());
    assert_eq!(r.totals, Figures::default());
}

fn any_fact() -> impl Strategy<Value = ConversationFact> {
    (
        0..3u8,
        0..2u8,
        0..3u8,
        0..100_000i64,
        proptest::option::of(0..50_000i64),
        proptest::option::of(0..900_000i64),
        proptest::option::of(0..7u8),
    )
        .prop_map(|(day, category, agent, wait, first, handle, score)| {
            let mut c = conv(
                &format!("2026-11-0{}", day + 1),
                ["sales", "billing"][usize::from(category)],
                &format!("agent{agent}"),
                wait,
                first,
                handle,
            );
            c.score = score.map(|s| match s {
                0 => Score::ThumbDown,
                6 => Score::ThumbUp,
                stars => Score::Stars(stars),
            });
            c
        })
}

proptest! {
    /// The rows partition the facts: every conversation counted once in a day row and once
    /// in an agent row, and the totals are their sums; every percentile is a value that
    /// occurred in its row, the median never above the 90th.
    #[test]
    fn rows_partition_the_facts(facts in proptest::collection::vec(any_fact(), 0..60)) {
        let r = report(&facts, &[], &[]);
        let by_days: u64 = r.days.iter().map(|d| d.figures.conversations).sum();
        let by_whole_days: u64 = r.day_totals.iter().map(|d| d.figures.conversations).sum();
        prop_assert_eq!(by_whole_days, facts.len() as u64);
        let by_agents: u64 = r.agents.iter().map(|a| a.figures.conversations).sum();
        prop_assert_eq!(by_days, facts.len() as u64);
        prop_assert_eq!(by_agents, facts.len() as u64);
        prop_assert_eq!(r.totals.conversations, facts.len() as u64);
        let unanswered: u64 = r.days.iter().map(|d| d.figures.unanswered).sum();
        prop_assert_eq!(unanswered, facts.iter().filter(|f| f.first_response_ms.is_none()).count() as u64);
        for row in &r.days {
            let waits: Vec<i64> = facts.iter()
                .filter(|f| f.day == row.day && f.category == row.category)
                .map(|f| f.wait_ms)
                .collect();
            prop_assert!(waits.contains(&row.figures.wait.median_ms.unwrap()));
            prop_assert!(row.figures.wait.median_ms <= row.figures.wait.p90_ms);
            let below = waits.iter().filter(|w| Some(**w) <= row.figures.wait.median_ms).count();
            prop_assert!(below * 2 >= waits.len(), "at least half at or below the median");
        }
    }
}

#[test]
fn reopen_rate_time_to_resolution_and_label_rows() {
    let resolved = |reopened: bool, resolution: Option<i64>, labels: &[&str]| ConversationFact {
        resolved: true,
        reopened,
        resolution_ms: resolution,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..conv("2026-11-02", "sales", "ann", 0, None, None)
    };
    let facts = [
        resolved(false, Some(60_000), &["vip"]),
        resolved(true, Some(180_000), &["vip", "bug"]),
        // Reopened and open again: resolved once, no time to resolution now.
        resolved(true, None, &[]),
        ConversationFact {
            labels: vec!["bug".into()],
            ..conv("2026-11-02", "sales", "bob", 0, None, None)
        },
    ];
    let r = report(&facts, &[], &[]);
    assert_eq!((r.totals.resolved, r.totals.reopened), (3, 2));
    assert_eq!(r.totals.reopen_rate, Some(2.0 / 3.0));
    assert_eq!(r.totals.resolution.median_ms, Some(60_000));
    assert_eq!(r.totals.resolution.p90_ms, Some(180_000));
    let rows: Vec<(&str, u64, u64)> = r
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.figures.conversations, l.figures.resolved))
        .collect();
    assert_eq!(rows, [("bug", 2, 1), ("vip", 2, 2)]);
    assert_eq!(r.labels[1].figures.reopen_rate, Some(0.5));
    let nothing = report(&[], &[], &[]);
    assert_eq!((nothing.totals.reopen_rate, nothing.labels.len()), (None, 0));
}

#[test]
fn bot_outcomes_are_counted_per_day_agent_and_in_total() {
    use crate::core::bots::Outcome;
    const TAKEN: crate::core::bots::TakenOver = crate::core::bots::TakenOver {
        waited_from: 0,
        taken_at: 0,
    };
    let with = |day: &str, agent: &str, bot: Option<Outcome>| ConversationFact {
        bot,
        ..conv(day, "sales", agent, 0, None, None)
    };
    let facts = [
        with("2026-11-02", "bot:Faq", Some(Outcome::ResolvedByBot)),
        with("2026-11-02", "ann", Some(Outcome::HandedOver(Some(TAKEN)))),
        with("2026-11-03", "bot:Faq", Some(Outcome::ResolvedByBot)),
        with("2026-11-03", "ann", None),
    ];
    let r = report(&facts, &[], &[]);
    assert_eq!((r.totals.bot_resolved, r.totals.bot_handed_over), (2, 1));
    let per_day: Vec<(u64, u64)> = r
        .days
        .iter()
        .map(|d| (d.figures.bot_resolved, d.figures.bot_handed_over))
        .collect();
    assert_eq!(per_day, [(1, 1), (1, 0)]);
    let ann = r.agents.iter().find(|a| a.agent_id == "ann").unwrap();
    assert_eq!(
        (
            ann.figures.conversations,
            ann.figures.bot_resolved,
            ann.figures.bot_handed_over
        ),
        (2, 0, 1)
    );
}

/// A person who took a conversation over from its bot is measured from the hand-over; a
/// conversation its bot kept has no person's first response and is never unanswered.
#[test]
fn a_bots_conversation_is_measured_for_the_person_from_the_hand_over() {
    use crate::core::bots::{Outcome, TakenOver};
    let times = Times {
        queued_at: 1_000,
        paired_at: 1_000,
        first_agent_at: Some(9_000),
        ended_at: Some(20_000),
    };
    let taken = TakenOver {
        waited_from: 3_000,
        taken_at: 7_000,
    };
    assert_eq!(
        durations(times, Some(Outcome::HandedOver(Some(taken)))),
        (4_000, Some(2_000), Some(13_000))
    );
    assert_eq!(durations(times, None), (0, Some(8_000), Some(19_000)));
    // A bot line stored as an agent's first (an archive from before they were told
    // apart): no person's first response for a conversation the bot kept, nor before the
    // person took it over.
    assert_eq!(durations(times, Some(Outcome::ResolvedByBot)).1, None);
    let later = TakenOver {
        waited_from: 9_500,
        taken_at: 9_600,
    };
    assert_eq!(durations(times, Some(Outcome::HandedOver(Some(later)))).1, None);
    let kept = ConversationFact {
        bot: Some(Outcome::ResolvedByBot),
        ..conv("2026-11-02", "sales", "bot:Faq", 0, None, None)
    };
    let r = report(&[kept], &[], &[]);
    assert_eq!((r.totals.unanswered, r.totals.first_response.median_ms), (0, None));
}
