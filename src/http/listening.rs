//! The listening socket, bound with the listen backlog `LISTEN_BACKLOG` asks for: how many
//! connections the kernel completes and queues for the hub before its accept loop takes
//! them. The kernel caps every backlog at the system's limit (`net.core.somaxconn` on
//! Linux) without saying so, so the hub reads that limit and logs what was asked and
//! what is in force.
//!
//! The standard library listens with a backlog of 128: a burst of 2,000 websocket
//! upgrades overflowed that queue ~2,500 times, and the connections it dropped, `/healthz`
//! among them, waited for their SYN's retry (1 s) although the hub had time for them.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Where Linux keeps the largest backlog `listen` grants (per network namespace).
const SYSTEM_LIMIT: &str = "/proc/sys/net/core/somaxconn";

/// The listen backlog asked for, the system's limit when it is known, and what is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub asked: u32,
    pub system_limit: Option<u32>,
    pub in_force: u32,
}

impl Backlog {
    /// What the kernel grants for `asked` under `system_limit` (it takes the smaller).
    pub fn new(asked: u32, system_limit: Option<u32>) -> Backlog {
        let in_force = system_limit.map_or(asked, |limit| asked.min(limit));
        Backlog {
            asked,
            system_limit,
            in_force,
        }
    }

    /// Says what is in force at start-up, with a warning when the system cut it down.
    pub fn log(&self) {
        match self.system_limit {
            Some(limit) if limit < self.asked => tracing::warn!(
                "listen backlog {} (LISTEN_BACKLOG={}, capped by net.core.somaxconn={limit}; \
                 raise that sysctl to queue more connections in a burst)",
                self.in_force,
                self.asked
            ),
            Some(limit) => tracing::info!(
                "listen backlog {} (LISTEN_BACKLOG={}, net.core.somaxconn={limit})",
                self.in_force,
                self.asked
            ),
            None => tracing::info!(
                "listen backlog {} (LISTEN_BACKLOG={}; the system's limit is unknown and may lower it)",
                self.in_force,
                self.asked
            ),
        }
    }
}

/// The system's cap on listen backlogs, where it can be read.
pub fn system_limit() -> Option<u32> {
    std::fs::read_to_string(SYSTEM_LIMIT).ok()?.trim().parse().ok()
}

/// Binds `addr` and listens with `backlog` (capped by the system), non-blocking for tokio.
/// Like the standard library's `bind`, it sets `SO_REUSEADDR`, so a restarted hub can
/// listen again while the old one's connections linger in TIME_WAIT.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<(TcpListener, Backlog)> {
    let backlog = Backlog::new(backlog, system_limit());
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // The setting is at most 65,535 (validated), so it fits the C int.
    socket.listen(backlog.in_force.try_into().unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok((socket.into(), backlog))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_limit_caps_the_backlog() {
        assert_eq!(Backlog::new(4_096, Some(128)).in_force, 128);
        assert_eq!(Backlog::new(1_024, Some(4_096)).in_force, 1_024);
        assert_eq!(Backlog::new(4_096, Some(4_096)).in_force, 4_096);
        assert_eq!(Backlog::new(2_048, None).in_force, 2_048);
    }

    #[test]
    fn a_bound_listener_accepts() {
        let (listener, backlog) = bind("127.0.0.1:0".parse().unwrap(), 1_024).unwrap();
        assert_eq!(backlog.asked, 1_024);
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        listener.accept().unwrap();
    }
}
