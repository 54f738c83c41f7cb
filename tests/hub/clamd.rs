//! A real virus scanner of the test's own: Debian's clamd run as a private process on a
//! Unix socket in a temp directory, with one custom signature instead of the downloaded
//! database (a file containing [`MARKER`] is "infected"). A test that needs it fails loudly
//! when clamd is missing (`make test` installs `clamav-daemon` through
//! `scripts/ensure-test-deps.sh`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes the test signature matches anywhere in a file.
pub const MARKER: &[u8] = b"SWITCHBOARD-TEST-VIRUS-MARKER";
/// The name clamd reports for it (a custom signature is "UNOFFICIAL").
pub const SIGNATURE: &str = "Switchboard.Test.Marker.UNOFFICIAL";
/// How long clamd may take to load its one signature and listen on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(60);

pub struct Clamd {
    pub socket: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Clamd {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-clamd-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let signature = format!("Switchboard.Test.Marker:0:*:{}\n", hex::encode(MARKER));
        std::fs::write(dir.join("db/test.ndb"), signature).unwrap();
        let socket = dir.join("clamd.sock");
        let config = dir.join("clamd.conf");
        std::fs::write(
            &config,
            format!(
                "Foreground yes\nLocalSocket {}\nDatabaseDirectory {}\nLogFile {}\nPidFile {}\n",
                socket.display(),
                dir.join("db").display(),
                dir.join("clamd.log").display(),
                dir.join("clamd.pid").display(),
            ),
        )
        .unwrap();
        let child = Command::new(clamd_binary())
            .arg(format!("--config-file={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start clamd (apt install clamav-daemon): {e}"));
        let mut clamd = Self {
            socket,
            dir,
            child: Some(child),
        };
        clamd.wait_ready().await;
        clamd
    }

    /// Until clamd answers `PING` on its socket.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            let at = clamav_client::tokio::Socket {
                socket_path: &self.socket,
            };
            if clamav_client::tokio::ping(at)
                .await
                .is_ok_and(|pong| pong == clamav_client::PONG)
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.join("clamd.log")).unwrap_or_default();
                panic!("clamd exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "clamd did not listen within {START_WAIT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops clamd (SIGKILL): the scanner is down.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian installs clamd in /usr/sbin, which a user's PATH may lack.
fn clamd_binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/clamd");
    if sbin.exists() { sbin } else { PathBuf::from("clamd") }
}
