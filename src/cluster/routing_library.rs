//! The routing rules as one Redis Functions library (`FUNCTION LOAD` once, then `FCALL`).
//!
//! `lua/routing.lua` (every routing transition) and `lua/restore.lua` (Redis restarted
//! empty) are ~1,100 lines. Sent as scripts, every `EVALSHA` ran the whole file again to
//! define its functions before doing the one transition asked for; as a library they are
//! defined once, when the library is loaded, and each call runs only its transition.
//!
//! The library's name and its functions' names carry a hash of its code, so nodes running
//! different builds (a rolling upgrade) each call their own rules and never replace each
//! other's; a library is loaded with `FUNCTION LOAD` (never `REPLACE`). Redis keeps
//! functions with its data: a Redis restarted without its data answers "Function not
//! found" to the first call, which loads the library and calls again.
//!
//! The files are written as scripts (they read `KEYS`, `ARGV` and start each call with an
//! empty decision list `out`); a function gets its keys and arguments as parameters, so
//! each registered function sets those upvalues first. `tests/cluster_routing` runs the
//! library against the pure core (`core::routing`, the oracle).

use std::fmt::Write as _;
use std::sync::LazyLock;

use redis::aio::ConnectionManager;
use redis::{Cmd, FromRedisValue, RedisResult};
use sha2::{Digest, Sha256};

use super::routing_transitions::{ROUTING_LUA, TRANSITION_NAMES};

const RESTORE_LUA: &str = include_str!("lua/restore.lua");
/// A chat line's resend guard, which `restore.lua` sets again for the lines it writes back.
const CHAT_RESEND_LUA: &str = include_str!("lua/chat_resend.lua");

/// The restore script's entry points (`R.<name>` in `lua/restore.lua`).
pub const RESTORE_ENTRIES: [&str; 4] = ["offer", "restore", "claim_lines", "claim"];

/// The library as loaded, and the prefix of its functions' names.
pub struct Library {
    code: String,
    prefix: String,
}

/// The routing library of this build.
pub static LIBRARY: LazyLock<Library> = LazyLock::new(|| Library::build(TRANSITION_NAMES));

impl Library {
    /// The library registering `routing.lua`'s `run(<transition>)` for each of `transitions`
    /// and `restore.lua`'s entries.
    fn build(transitions: &[&str]) -> Self {
        let mut body = String::new();
        // Upvalues every function of the two files sees as a script sees its globals.
        body.push_str("local KEYS, ARGV = {}, {}\n");
        body.push_str(ROUTING_LUA);
        body.push('\n');
        body.push_str(CHAT_RESEND_LUA);
        body.push('\n');
        body.push_str(RESTORE_LUA);
        body.push('\n');
        body.push_str(
            "local function register(name, entry)\n  \
               redis.register_function(name, function(keys, args)\n    \
                 KEYS, ARGV, out = keys, args, {}\n    \
                 return entry()\n  \
               end)\n\
             end\n",
        );
        let hash = hex_prefix(&Sha256::digest(
            format!("{body}{transitions:?}{RESTORE_ENTRIES:?}").as_bytes(),
        ));
        let prefix = format!("sb_{hash}_");
        for name in transitions {
            let _ = writeln!(body, "register('{prefix}{name}', function() return run('{name}') end)");
        }
        for name in RESTORE_ENTRIES {
            let _ = writeln!(body, "register('{prefix}restore_{name}', R.{name})");
        }
        let code = format!("#!lua name=sb_routing_{hash}\n{body}");
        Self { code, prefix }
    }

    /// The `FCALL` of a routing transition (`Transition::name`) with the one key every
    /// routing call names; the caller adds the arguments.
    pub fn transition(&self, name: &str, key: &str) -> Cmd {
        self.call(name, key)
    }

    /// The `FCALL` of one of [`RESTORE_ENTRIES`].
    pub fn restore(&self, entry: &str, key: &str) -> Cmd {
        self.call(&format!("restore_{entry}"), key)
    }

    fn call(&self, function: &str, key: &str) -> Cmd {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(format!("{}{function}", self.prefix)).arg(1).arg(key);
        cmd
    }

    /// Runs `cmd` (an `FCALL` of this library), loading the library first if Redis lacks it.
    pub async fn invoke<T: FromRedisValue>(&self, cmd: &Cmd, conn: &mut ConnectionManager) -> RedisResult<T> {
        match cmd.query_async(conn).await {
            Err(e) if is_not_loaded(&e) => {
                self.load(conn).await?;
                cmd.query_async(conn).await
            }
            Err(e) if is_too_old(&e) => Err(too_old(e)),
            other => other,
        }
    }

    /// Loads the library; one another node loaded meanwhile is as good.
    pub async fn load(&self, conn: &mut ConnectionManager) -> RedisResult<()> {
        let loaded: RedisResult<String> = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(&self.code)
            .query_async(conn)
            .await;
        match loaded {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("already exists") => Ok(()),
            Err(e) if is_too_old(&e) => Err(too_old(e)),
            Err(e) => Err(e),
        }
    }
}

/// Redis's answer to an `FCALL` of a function it does not have.
fn is_not_loaded(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// Redis's answer to `FCALL` or `FUNCTION` before 7.0, which has no Functions.
fn is_too_old(e: &redis::RedisError) -> bool {
    let text = e.to_string();
    text.contains("unknown command") && (text.contains("FCALL") || text.contains("FUNCTION") || text.contains("fcall"))
}

/// What the logs say of a Redis older than 7.0: the setting to change, not just the command.
fn too_old(e: redis::RedisError) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Client,
        "REDIS_URL names a Redis older than 7.0",
        format!("the routing rules need Redis Functions (Redis 7.0 or later): {e}"),
    ))
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(6).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_names_every_transition_and_restore_entry_under_its_hash() {
        let library = Library::build(&["join", "leave"]);
        assert!(library.code.starts_with("#!lua name=sb_routing_"));
        for name in [
            "join",
            "leave",
            "restore_offer",
            "restore_restore",
            "restore_claim_lines",
            "restore_claim",
        ] {
            assert!(
                library.code.contains(&format!("register('{}{name}'", library.prefix)),
                "{name}"
            );
        }
        // Another build (other code) gets other names, so two builds never collide.
        let other = Library::build(&["join"]);
        assert_ne!(library.prefix, other.prefix);
    }
}
