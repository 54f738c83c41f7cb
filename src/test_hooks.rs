//! Debug builds' test hooks: `SWITCHBOARD_TEST_*` variables a test sets to stage a fault
//! it cannot cause from outside (a follower behind the stream, a lost answer, a slow read).
//! Read in debug builds only: in a release build every function here answers as if the
//! variable were unset, without looking, so no deployment can turn a hook on.
//!
//! Most hooks name the node they act on first: `<node id>:<word>:…` ([`for_node`]).

use std::time::Duration;

/// The hook's value, when it is set (debug builds only).
pub fn value(name: &str) -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var(name).ok()
    } else {
        None
    }
}

/// The words after the node id of a hook of the form `<node id>:<word>:…`, when it names
/// `node` (none for a hook that is the node id alone).
pub fn for_node(name: &str, node: &str) -> Option<Vec<String>> {
    let value = value(name)?;
    let mut words = value.split(':');
    (words.next() == Some(node)).then(|| words.map(str::to_string).collect())
}

/// A hook whose value is a number.
pub fn number<T: std::str::FromStr>(name: &str) -> Option<T> {
    value(name)?.parse().ok()
}

/// Sleeps for the hook's milliseconds (a number), when it is set.
pub async fn pause(name: &str) {
    if let Some(ms) = number::<u64>(name) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
