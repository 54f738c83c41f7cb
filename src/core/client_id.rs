//! A change its client names for its retries (`client_id`): sent again after a 503 or a
//! lost answer, the request names the same thing, so what it makes gets the same id and
//! the store, which keeps a thing once by its id, keeps it once. Used by an answer by mail
//! (`offline::client_reply_id`) and by a note written over HTTP
//! (`http::conversation_desk`); a live chat's frames name theirs on the socket.

use uuid::Uuid;

/// Longest `client_id`, in characters.
pub const MAX_LEN: usize = 64;

/// Is `raw` a `client_id`: 1 to [`MAX_LEN`] visible ASCII characters (the console sends a
/// UUID; the id made from it is derived, never the name itself).
pub fn is_valid(raw: &str) -> bool {
    (1..=MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic())
}

/// The id of what `agent` made in `scope` (a message, a conversation) and named
/// `client_id`: the same for each retry, another for another agent, scope or name. A
/// name-based UUID (v5) in `namespace`, one per kind of thing (a random constant: changing
/// it would make a retry across an upgrade a second thing).
pub fn derived_id(namespace: &Uuid, scope: &str, agent: &str, client_id: &str) -> Uuid {
    let name = format!("{scope}\n{agent}\n{client_id}");
    Uuid::new_v5(namespace, name.as_bytes())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NS: Uuid = Uuid::from_u128(1);

    proptest! {
        #[test]
        fn one_id_per_scope_agent_and_name(
            a in ("[a-z]{1,3}", "[a-z]{1,3}", "[!-~]{1,4}"),
            b in ("[a-z]{1,3}", "[a-z]{1,3}", "[!-~]{1,4}"),
        ) {
            let id = |(s, g, c): &(String, String, String)| derived_id(&NS, s, g, c);
            prop_assert_eq!(id(&a) == id(&b), a == b);
        }

        #[test]
        fn a_client_id_is_short_visible_ascii(raw in "\\PC{0,70}") {
            let visible = raw.bytes().all(|b| b.is_ascii_graphic());
            prop_assert_eq!(is_valid(&raw), visible && !raw.is_empty() && raw.len() <= MAX_LEN);
        }
    }
}
