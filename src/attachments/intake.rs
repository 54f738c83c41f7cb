//! Where an upload's bytes are hashed, checked and written, and images re-encoded: a few
//! threads of their own at a lower priority ([`crate::niced`]), not the runtime's.
//!
//! Why: 20 files of 10 MB uploading at once on a one-core hub took its delivery p99 from
//! ~10 ms to ~400 ms at 1,000 msg/s (bench/README.md, "Relay while files upload"): hashing
//! (SHA-256), the UTF-8 check and the writes of ~200 MB/s ran on the same threads as
//! relaying, at the same priority. On niced threads they get the CPU the relay leaves, and
//! since each upload waits for its last chunk's work before it reads more, an upload's
//! pace falls to what those threads keep up with: the socket's buffers, not the hub's
//! memory, hold the rest.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::sniff::{self, TextCheck};

/// The intake threads' nice value: as the archive's fold thread.
const INTAKE_NICE: i32 = 10;

/// Bytes gathered from the socket before they go to an intake thread as one piece of work:
/// fewer hand-overs than one per body chunk (often 8–16 KiB), and at most this much of
/// each upload in memory.
pub const PIECE_BYTES: usize = 256 << 10;

type Job = Box<dyn FnOnce() + Send>;

/// The intake threads, started at the first upload; they end when the last handle is
/// dropped. Cheap to clone.
#[derive(Clone, Default)]
pub struct Intake {
    jobs: Arc<OnceLock<Mutex<Sender<Job>>>>,
}

/// The intake's threads are gone (one panicked): the upload fails, the hub goes on.
#[derive(Debug)]
pub struct IntakeGone;

impl Intake {
    /// Runs `work` on an intake thread and waits for its result.
    pub async fn run<R: Send + 'static>(&self, work: impl FnOnce() -> R + Send + 'static) -> Result<R, IntakeGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let sent = crate::poison::lock(self.jobs.get_or_init(start)).send(job);
        sent.map_err(|_| IntakeGone)?;
        rx.await.map_err(|_| IntakeGone)
    }
}

/// Starts the threads: one a core, two to four. Unbounded queue, bounded by its use: each
/// upload (and each image re-encoding) has at most one job waiting, and uploads are bounded
/// by the connections the hub admits.
fn start() -> Mutex<Sender<Job>> {
    let (tx, rx) = channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("upload-intake-{i}"))
            .spawn(move || serve(&rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "attachments: could not start an intake thread");
        }
    }
    Mutex::new(tx)
}

fn serve(jobs: &Mutex<Receiver<Job>>) {
    crate::niced::lower_this_thread(INTAKE_NICE, "upload intake thread");
    loop {
        let job = match crate::poison::lock(jobs).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

/// An upload being received: its bytes so far written to the staged file, hashed, and
/// checked for text, with the first bytes kept for telling its type.
pub struct Receiving {
    file: File,
    pub size: u64,
    hash: Sha256,
    pub head: Vec<u8>,
    pub text: TextCheck,
}

impl Receiving {
    pub fn new(file: File) -> Self {
        Self {
            file,
            size: 0,
            hash: Sha256::new(),
            head: Vec::new(),
            text: TextCheck::default(),
        }
    }

    /// Takes the next piece of the body (on an intake thread: it hashes and writes).
    pub fn feed(&mut self, piece: &[u8]) -> io::Result<()> {
        let offset = self.size;
        self.size += piece.len() as u64;
        self.hash.update(piece);
        self.text.feed(piece);
        if self.head.len() < sniff::HEAD {
            let take = (sniff::HEAD - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..take]);
        }
        self.file.write_all(piece)?;
        start_writeback(&self.file, offset, piece.len());
        Ok(())
    }

    /// The SHA-256 of all the bytes, lower-case hex.
    pub fn sha256_hex(self) -> String {
        hex::encode(self.hash.finalize())
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk now, without
/// waiting for it. Why: left to the kernel's flusher, many uploads' pages pile up dirty
/// (hundreds of MB), every process that writes is then throttled while they drain (the
/// archive's journal among them), and each upload's final sync waits for all of its file at
/// once. Written back piece by piece, the final sync finds little left. Advice only: a
/// failure changes nothing but the timing, and the final `fsync` still decides durability.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a descriptor this `File` owns and keeps open for the call.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread.
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, nice field 19.
        stat.rfind(')')
            .and_then(|end| stat[end + 2..].split(' ').nth(16)?.parse().ok())
            .unwrap_or(0)
    }

    /// An upload's work runs on an intake thread below the relay's priority, and pieces
    /// fed one after another hash and write as the whole would.
    #[tokio::test]
    async fn pieces_are_hashed_and_written_on_a_niced_thread() {
        let intake = Intake::default();
        let (name, nice) = intake
            .run(|| (std::thread::current().name().map(str::to_string), own_nice()))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("upload-intake-")));
        if cfg!(target_os = "linux") {
            assert!(nice >= i64::from(INTAKE_NICE), "the intake thread runs at nice {nice}");
        }
        let staged = tempfile::NamedTempFile::new().unwrap();
        let mut receiving = Receiving::new(staged.reopen().unwrap());
        let body: Vec<u8> = "Grüße, ".repeat(50_000).into_bytes();
        for piece in body.chunks(7_777) {
            let piece = piece.to_vec();
            let fed;
            (receiving, fed) = intake
                .run(move || {
                    let fed = receiving.feed(&piece);
                    (receiving, fed)
                })
                .await
                .unwrap();
            fed.unwrap();
        }
        assert_eq!(receiving.size, body.len() as u64);
        assert!(
            receiving.text.is_text(),
            "a character cut between pieces is carried over"
        );
        assert_eq!(receiving.sha256_hex(), crate::attachments::sha256_hex(&body));
        assert_eq!(std::fs::read(staged.path()).unwrap(), body);
    }
}
