//! A real IMAP server of the test's own: Debian's Dovecot run as a private process (no
//! root service, no system configuration) with its own config file, passwd-file user and
//! maildir in a temp directory, listening on a loopback port, logging to a file there.
//! Mails are put into its mailbox with IMAP APPEND, as a mail server would deliver them.
//! A test that needs one fails loudly when Dovecot is missing (`make test` installs
//! `dovecot-imapd` through `scripts/ensure-test-deps.sh`).
//!
//! Dovecot refuses to run its login process as root and to open a mailbox as uid 0, so a
//! test run as root hands those to the package's own `dovenull` and `dovecot` users (the
//! mail directory is theirs); anyone else runs every part as themselves.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use tokio::net::TcpStream;

use crate::mongod::unassigned_port;

pub const USER: &str = "desk";
pub const PASSWORD: &str = "desk-imap-password";
/// How long Dovecot may take to say it listens on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(30);

pub struct Dovecot {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Dovecot {
    /// Starts Dovecot on a port of its own (one the kernel never hands out, so a restart
    /// gets it back) with an empty mailbox.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-imap-{}", uuid::Uuid::new_v4().simple()));
        let mut last = String::new();
        for _ in 0..20 {
            let mut server = Self {
                port: unassigned_port(),
                dir: dir.clone(),
                child: None,
            };
            match server.run().await {
                Ok(()) => return server,
                Err(why) => {
                    last = why;
                    // Dropping it would remove the directory; the next try reuses it.
                    server.dir = PathBuf::new();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("no port for Dovecot: {last}");
    }

    /// Stops the server (SIGTERM, waited for); its mailbox stays for [`Self::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::common::signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The master gone, a session's `imap` process serves on for about 30 s (a client
            // in IDLE kept talking to it, so "the server is down" came after the test's wait,
            // on a slow machine): a server that goes down takes its sessions with it.
            // SAFETY: kill takes a process group id and a signal; the group is our child's own.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        }
    }

    /// Starts it again on the same port and mailbox.
    pub async fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_WAIT;
        loop {
            match self.run().await {
                Ok(()) => return,
                // The old listener's port may take a moment to be free again.
                Err(why) if Instant::now() < deadline => {
                    let _ = why;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(why) => panic!("Dovecot did not come back on port {}: {why}", self.port),
            }
        }
    }

    /// Writes the configuration and starts `dovecot -F`; `Ok` once this very process logged
    /// that it started (it logs that only after its listeners are bound), `Err` with its log
    /// when it exited (the port was taken, for one).
    async fn run(&mut self) -> Result<(), String> {
        let log = self.dir.join("dovecot.log");
        let _ = std::fs::remove_file(&log);
        let conf = self.configure();
        let binary = ["/usr/sbin/dovecot", "dovecot"]
            .into_iter()
            .find(|b| !b.starts_with('/') || Path::new(b).exists())
            .unwrap();
        // A process group of its own, so `stop` ends the sessions with the server.
        let mut child = Command::new(binary)
            .process_group(0)
            .args(["-F", "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot must be installed for this test (scripts/ensure-test-deps.sh installs dovecot-imapd)");
        let deadline = Instant::now() + START_WAIT;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("starting up") {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    use std::io::Read;
                    let _ = err.read_to_string(&mut stderr);
                }
                return Err(format!("dovecot exited ({status}): {text}{stderr}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("dovecot did not start within {START_WAIT:?}: {text}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The config file (and passwd file, mail home) for the current port; returns its path.
    fn configure(&self) -> PathBuf {
        let dir = &self.dir;
        let home = dir.join("home");
        std::fs::create_dir_all(&home).expect("the test's Dovecot directory");
        let (login_user, internal_user, internal_group, mail_uid, mail_gid) = users();
        // The mail process runs as `mail_uid` and writes the maildir in `home`.
        chown(&home, &mail_uid, &mail_gid);
        std::fs::write(dir.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let d = dir.display();
        let conf = format!(
            "base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={d}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth-worker {{
  user = $default_internal_user
}}
",
            port = self.port
        );
        let path = dir.join("dovecot.conf");
        std::fs::write(&path, conf).unwrap();
        path
    }

    /// A session logged in as the mailbox's owner, with INBOX selected.
    pub async fn session(&self) -> async_imap::Session<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("Dovecot answers");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("Dovecot's greeting")
            .expect("a greeting");
        let mut session = client.login(USER, PASSWORD).await.map_err(|(e, _)| e).expect("login");
        session.select("INBOX").await.expect("INBOX");
        session
    }

    /// Puts `raw` into INBOX, as a delivered mail.
    pub async fn append(&self, raw: &str) {
        let mut session = self.session().await;
        session
            .append("INBOX", None, None, raw.as_bytes())
            .await
            .expect("APPEND");
        session.logout().await.expect("LOGOUT");
    }

    /// Puts `raw` into INBOX's maildir as the local delivery agent would, the server
    /// stopped or not: a mail that arrives while IMAP is down.
    pub fn deliver_locally(&self, raw: &str) {
        let maildir = self.dir.join("home").join(USER).join("Maildir");
        let (_, _, _, mail_uid, mail_gid) = users();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
            chown(&maildir.join(sub), &mail_uid, &mail_gid);
        }
        let name = format!("{}.test", uuid::Uuid::new_v4().simple());
        let (tmp, new) = (maildir.join("tmp").join(&name), maildir.join("new").join(&name));
        std::fs::write(&tmp, raw).unwrap();
        chown(&tmp, &mail_uid, &mail_gid);
        std::fs::rename(tmp, new).unwrap();
    }

    /// Every mail in INBOX with its flags (`\Seen`, keywords), in UID order.
    pub async fn flags(&self) -> Vec<(u32, Vec<String>)> {
        let mut session = self.session().await;
        let fetched: Vec<_> = session
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .expect("FETCH")
            .try_collect()
            .await
            .expect("FETCH answers");
        // A mail whose flags the hub changes meanwhile may also come as an unsolicited FETCH,
        // without its UID: the answer's own line for it follows, so only UID'd ones count,
        // the last one heard per UID.
        let all: std::collections::BTreeMap<u32, Vec<String>> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, f.flags().map(|flag| format!("{flag:?}")).collect())))
            .collect();
        let all: Vec<(u32, Vec<String>)> = all.into_iter().collect();
        session.logout().await.expect("LOGOUT");
        all
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Who runs which part: (login user, internal user, internal group, mail uid, mail gid).
fn users() -> (String, String, String, String, String) {
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        let d = |s: &str| s.to_string();
        (d("dovenull"), d("dovecot"), d("dovecot"), d("dovecot"), d("dovecot"))
    } else {
        let user = name_of(uid);
        let group = group_of(gid);
        (user.clone(), user, group, uid.to_string(), gid.to_string())
    }
}

fn name_of(uid: libc::uid_t) -> String {
    // SAFETY: getpwuid returns null or a pointer to a static entry, read at once.
    let name = unsafe { libc::getpwuid(uid).as_ref().map(|entry| entry.pw_name) };
    entry_name(name, || {
        format!("uid {uid} has no passwd entry; Dovecot needs a user name")
    })
}

fn group_of(gid: libc::gid_t) -> String {
    // SAFETY: getgrgid returns null or a pointer to a static entry, read at once.
    let name = unsafe { libc::getgrgid(gid).as_ref().map(|entry| entry.gr_name) };
    entry_name(name, || {
        format!("gid {gid} has no group entry; Dovecot needs a group name")
    })
}

/// The name a passwd or group entry holds (`None`: no entry, the test fails saying `missing`).
fn entry_name(name: Option<*mut libc::c_char>, missing: impl Fn() -> String) -> String {
    let name = name.unwrap_or_else(|| panic!("{}", missing()));
    // SAFETY: the name of the static entry just looked up, not yet overwritten by another.
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

/// Gives `path` to the mail user when the test runs as root (as anyone else, it is theirs).
fn chown(path: &Path, user: &str, group: &str) {
    if user.parse::<u32>().is_ok() {
        return;
    }
    let status = Command::new("chown")
        .arg(format!("{user}:{group}"))
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown {user}:{group} {} failed", path.display());
}
