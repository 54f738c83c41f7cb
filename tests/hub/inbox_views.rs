//! The inbox as the team's work list: an agent lists the unassigned conversations of the
//! categories they serve (to pick one up) and everyone's of those categories, never
//! another category's; asking for one that is not theirs is refused. Offline messages are
//! the unassigned conversations here; taking one moves it to the agent's own list. Each
//! answer counts the three views for its status and category filters (not its label), as
//! the caller may see them, however long the list.

use serde_json::{Value, json};

use crate::common::*;

/// `who` leaves an offline message in `category`; its id.
async fn leaves(hub: &TestHub, who: &str, category: &str) -> String {
    let (status, left) = post(
        hub,
        "/api/offline-messages",
        json!({"category": category, "name": who, "email": "someone@example.com", "text": format!("{who} here")}),
    )
    .await;
    assert_eq!(status, 201, "{left}");
    left["id"].as_str().unwrap().to_string()
}

/// `api` lists exactly `want` at `path`, in any order (the order is tested elsewhere).
async fn lists(api: &Api, path: &str, want: &[&String]) {
    let (status, page) = api.get(path).await;
    assert_eq!(status, 200, "{path}: {page}");
    let mut got = item_ids(&page);
    got.sort();
    let mut want: Vec<&str> = want.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(got, want, "{path}");
}

/// A desk where Ann serves General, Bob General and Sales, and Carla and Dora (General)
/// and Sam (Sales) left offline messages.
struct Team {
    _hub: TestHub,
    ann: Api,
    bob: Api,
    admin: Api,
    carla: String,
    dora: String,
    sam: String,
}

async fn team() -> Team {
    let hub = TestHub::start().await;
    hub.agent_account("ann", &["general"], 2).await;
    hub.agent_account("bob", &["general", "sales"], 2).await;
    Team {
        ann: hub.login("ann", "agent-password").await,
        bob: hub.login("bob", "agent-password").await,
        admin: hub.admin().await,
        carla: leaves(&hub, "Carla", "general").await,
        dora: leaves(&hub, "Dora", "general").await,
        sam: leaves(&hub, "Sam", "sales").await,
        _hub: hub,
    }
}

#[tokio::test]
async fn an_agent_lists_and_takes_the_unassigned_conversations_of_their_categories_only() {
    let Team {
        _hub,
        ann,
        bob,
        admin,
        carla,
        dora,
        sam,
    } = team().await;

    // Ann serves General: its two, not Sales' one; Bob serves both.
    lists(&ann, "/api/inbox?view=unassigned", &[&carla, &dora]).await;
    lists(&ann, "/api/inbox?view=all", &[&carla, &dora]).await;
    lists(&bob, "/api/inbox?view=unassigned", &[&carla, &dora, &sam]).await;
    lists(&bob, "/api/inbox?view=unassigned&category=sales", &[&sam]).await;
    lists(&admin, "/api/inbox?view=unassigned", &[&carla, &dora, &sam]).await;

    // A category Ann does not serve is refused, in every view, and says nothing of it.
    for view in ["unassigned", "all", "mine"] {
        let (status, body) = ann.get(&format!("/api/inbox?view={view}&category=sales")).await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{view}: {body}");
    }
    // Admins filter by any category.
    lists(&admin, "/api/inbox?view=all&category=sales", &[&sam]).await;

    // Ann takes Carla's: hers, out of the unassigned view, still in everyone's of General;
    // Bob, a moment late, is refused.
    ann.post_answering(200, &format!("/api/offline-messages/{carla}/take"), json!({}))
        .await;
    let (status, body) = bob
        .post(&format!("/api/offline-messages/{carla}/take"), json!({}))
        .await;
    assert_eq!((status, error_code(&body)), (409, "already_taken"), "{body}");
    lists(&ann, "/api/inbox", &[&carla]).await;
    lists(&ann, "/api/inbox?view=unassigned", &[&dora]).await;
    lists(&bob, "/api/inbox?view=unassigned", &[&dora, &sam]).await;
    lists(&bob, "/api/inbox?view=all&category=general", &[&carla, &dora]).await;
}

/// `api`'s counts at `path`: mine, unassigned, all.
async fn counts(api: &Api, path: &str) -> (u64, u64, u64) {
    let (status, page) = api.get(path).await;
    assert_eq!(status, 200, "{path}: {page}");
    let c = &page["counts"];
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{path}: no count in {page}"));
    (n(&c["mine"]), n(&c["unassigned"]), n(&c["all"]))
}

#[tokio::test]
async fn the_views_are_counted_for_the_status_and_category_asked_as_the_caller_may_see_them() {
    let team = team().await;
    let (ann, bob, admin, carla) = (&team.ann, &team.bob, &team.admin, &team.carla);

    // Ann serves General: its two unassigned; Bob and the admin all three.
    assert_eq!(counts(ann, "/api/inbox").await, (0, 2, 2));
    assert_eq!(counts(bob, "/api/inbox?view=all").await, (0, 3, 3));
    assert_eq!(counts(admin, "/api/inbox?view=unassigned").await, (0, 3, 3));
    // The category asked for, in every view; a page's limit does not cut the counts.
    assert_eq!(counts(bob, "/api/inbox?category=sales").await, (0, 1, 1));
    assert_eq!(counts(bob, "/api/inbox?view=unassigned&limit=1").await, (0, 3, 3));

    // Ann takes Carla's: one hers, one left unassigned, both in General's.
    ann.post_answering(200, &format!("/api/offline-messages/{carla}/take"), json!({}))
        .await;
    assert_eq!(counts(ann, "/api/inbox?view=unassigned").await, (1, 1, 2));
    assert_eq!(counts(bob, "/api/inbox").await, (0, 2, 3));
    // The status asked for: nothing resolved yet, two open in General.
    assert_eq!(counts(ann, "/api/inbox?status=resolved").await, (0, 0, 0));
    assert_eq!(counts(ann, "/api/inbox?view=all&status=open").await, (1, 1, 2));
    // A label narrows the list, not the counts (they are the status's and category's).
    crate::conversations_outage::defines_vip(admin).await;
    let (status, page) = ann.get("/api/inbox?view=all&label=vip").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(item_ids(&page), Vec::<&str>::new());
    assert_eq!(
        (&page["counts"]["all"], &page["counts"]["statuses"]),
        (&json!(2), &json!(["open", "pending", "snoozed"])),
        "{page}"
    );
}
