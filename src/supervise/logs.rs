//! Child output: shown on the console prefixed with the child's name, and
//! kept in `OUT/logs/<name>.log` with size-based rotation.
//!
//! This module owns the log files under `OUT/logs/` and the supervisor's
//! console output; it must not touch any other file in `OUT` (those belong
//! to the processor and to [`super`]'s `supervisor.json`).
//!
//! Rotation is by size, like supervisord's `logfile_maxbytes` /
//! `logfile_backups`: when a line would take `<name>.log` past the limit,
//! `<name>.log.1` becomes `.2` and so on, the oldest is dropped and a fresh
//! `<name>.log` is started. Disk use is thus bounded by `max_bytes × files`
//! however long a demo runs. Each line in the file carries a UTC time stamp
//! and the stream it came from; the console gets the bare line behind a
//! name column, coloured only when stdout is a terminal (so piping the
//! output to a file or `grep` gives clean text).
//!
//! The console is written by a thread of its own through a bounded queue,
//! never by the supervisor's event loop: a terminal paused with Ctrl-S or
//! a pipe into a stopped pager would otherwise block the loop, then the
//! children's pipes, then the processor itself, until its heartbeat went
//! stale and it was killed for it. When the console falls
//! [`CONSOLE_QUEUE`] lines behind, further lines are left out of the
//! console (never out of the files) and their count is shown once it
//! catches up.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Default size limit of one log file.
pub const MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Default number of files kept per child, the live one included.
pub const FILES: u32 = 3;

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A message of the supervisor about this child.
    Supervisor,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
            Stream::Supervisor => "sup",
        }
    }
}

/// One size-rotated log file.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    files: u32,
}

impl RotatingFile {
    /// Opens (appending to) `dir/<name>.log`, creating `dir` if needed.
    pub fn open(dir: &Path, name: &str, max_bytes: u64, files: u32) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file: Some(file),
            size,
            max_bytes: max_bytes.max(1),
            files: files.max(1),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`, rotating first if they would not fit.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.files == 1 {
            fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            fs::remove_file(self.rotated(self.files - 1)).or_else(ignore_missing)?;
            for n in (1..self.files - 1).rev() {
                fs::rename(self.rotated(n), self.rotated(n + 1)).or_else(ignore_missing)?;
            }
            fs::rename(&self.path, self.rotated(1)).or_else(ignore_missing)?;
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Console lines that may wait for a slow terminal before lines are left
/// out.
pub const CONSOLE_QUEUE: usize = 1024;

enum ConsoleMsg {
    Text(String),
    /// Answer once everything before it is written.
    Flushed(SyncSender<()>),
}

/// The console writer thread's queue.
struct ConsoleWriter {
    tx: SyncSender<ConsoleMsg>,
    /// Lines left out since the last report.
    left_out: AtomicU64,
}

static CONSOLE: OnceLock<Option<ConsoleWriter>> = OnceLock::new();

fn console_writer() -> Option<&'static ConsoleWriter> {
    CONSOLE
        .get_or_init(|| {
            let (tx, rx) = sync_channel::<ConsoleMsg>(CONSOLE_QUEUE);
            std::thread::Builder::new()
                .name("console".into())
                .spawn(move || {
                    for msg in rx {
                        match msg {
                            ConsoleMsg::Text(text) => {
                                let mut out = io::stdout().lock();
                                let _ = out.write_all(text.as_bytes());
                                let _ = out.flush();
                            }
                            ConsoleMsg::Flushed(ack) => {
                                let _ = ack.send(());
                            }
                        }
                    }
                })
                .ok()?;
            Some(ConsoleWriter {
                tx,
                left_out: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Queues `text` (whole lines) for the console without ever waiting.
fn to_console(text: String) {
    let Some(w) = console_writer() else {
        // No thread: write directly rather than lose the output.
        let _ = io::stdout().lock().write_all(text.as_bytes());
        return;
    };
    let left_out = w.left_out.swap(0, Ordering::Relaxed);
    if left_out > 0 {
        let note = format!(
            "orderflow | … {left_out} lines not shown: the console was too slow (they are in the log files)\n"
        );
        if w.tx.try_send(ConsoleMsg::Text(note)).is_err() {
            w.left_out.fetch_add(left_out + 1, Ordering::Relaxed);
            return;
        }
    }
    if w.tx.try_send(ConsoleMsg::Text(text)).is_err() {
        w.left_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until the console has written what was queued, for at most
/// `timeout` (a stalled console must not hold the supervisor's exit).
pub fn flush_console(timeout: Duration) -> bool {
    let Some(w) = CONSOLE.get().and_then(Option::as_ref) else {
        return true;
    };
    let deadline = Instant::now() + timeout;
    let (ack_tx, ack) = sync_channel(1);
    let mut msg = ConsoleMsg::Flushed(ack_tx);
    loop {
        match w.tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return false,
        }
    }
    ack.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

/// Where the console output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// Print lines, coloured when stdout is a terminal.
    Auto,
    /// Print plain lines.
    Plain,
    /// Print nothing (files only).
    Quiet,
}

/// The log of one child (or of the supervisor itself): its file and its
/// console prefix. Shared by the tasks reading stdout and stderr.
#[derive(Debug)]
pub struct Log {
    name: String,
    prefix: String,
    console: bool,
    file: Mutex<Sink>,
    /// The last line written to stderr.
    last_stderr: Mutex<Option<String>>,
}

/// A log file and the lines it could not take.
#[derive(Debug)]
struct Sink {
    file: RotatingFile,
    /// Lines dropped since the file last took one (disk full, …).
    dropped: u64,
    /// When a write last failed: the next try waits [`RETRY`].
    failed_at: Option<std::time::Instant>,
}

/// How long a failing log file is left alone before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

impl Log {
    /// `colour` is an ANSI colour number (31‒37) used for the name on a
    /// terminal.
    pub fn open(
        dir: &Path,
        name: &str,
        colour: u8,
        console: Console,
        max_bytes: u64,
        files: u32,
    ) -> io::Result<Log> {
        let file = RotatingFile::open(dir, name, max_bytes, files)?;
        let coloured = console == Console::Auto && io::stdout().is_terminal();
        let prefix = if coloured {
            format!("\x1b[1;{colour}m{name:>9}\x1b[0m | ")
        } else {
            format!("{name:>9} | ")
        };
        Ok(Log {
            name: name.to_string(),
            prefix,
            console: console != Console::Quiet,
            file: Mutex::new(Sink {
                file,
                dropped: 0,
                failed_at: None,
            }),
            last_stderr: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Shows and keeps one line (without its line break). A log file that
    /// cannot be written (a full disk) drops lines, counted, and is tried
    /// again a second later; the count is written once it works again.
    /// The child's output must never block or kill the supervisor (nor
    /// does the console: see the module docs).
    pub fn line(&self, stream: Stream, line: &str) {
        if stream == Stream::Stderr && !line.trim().is_empty() {
            if let Ok(mut last) = self.last_stderr.lock() {
                *last = Some(line.to_string());
            }
        }
        if self.console {
            to_console(format!("{}{}\n", self.prefix, line));
        }
        self.keep(stream, line);
    }

    /// Keeps one line in the file only, not on the console.
    pub fn keep(&self, stream: Stream, line: &str) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let mut sink = match self.file.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if sink.failed_at.is_some_and(|t| t.elapsed() < RETRY) {
            sink.dropped += 1;
            return;
        }
        let mut text = String::new();
        if sink.dropped > 0 {
            text.push_str(&format!(
                "{stamp} {} {} lines of this log were dropped: it could not be written\n",
                Stream::Supervisor.tag(),
                sink.dropped
            ));
        }
        text.push_str(&format!("{stamp} {} {line}\n", stream.tag()));
        match sink.file.write(text.as_bytes()) {
            Ok(()) => {
                if sink.dropped > 0 {
                    eprintln!(
                        "orderflow: {} can be written again; {} lines of {}'s output were dropped",
                        sink.file.path().display(),
                        sink.dropped,
                        self.name
                    );
                }
                sink.dropped = 0;
                sink.failed_at = None;
            }
            Err(e) => {
                if sink.dropped == 0 {
                    eprintln!(
                        "orderflow: cannot write {}: {e}; {}'s output is dropped (and counted) \
                         until it can",
                        sink.file.path().display(),
                        self.name
                    );
                }
                sink.dropped += 1;
                sink.failed_at = Some(std::time::Instant::now());
            }
        }
    }

    /// The last line written to stderr, if any.
    pub fn last_stderr(&self) -> Option<String> {
        self.last_stderr.lock().ok().and_then(|l| l.clone())
    }

    /// Lines dropped since the file last took one.
    pub fn dropped(&self) -> u64 {
        match self.file.lock() {
            Ok(g) => g.dropped,
            Err(poisoned) => poisoned.into_inner().dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn a_log_on_a_full_disk_drops_and_counts_lines_without_failing() {
        // /dev/full answers every write with "No space left on device".
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/full", dir.path().join("p.log")).unwrap();
        let log = Log::open(dir.path(), "p", 32, Console::Quiet, 1 << 20, 3).unwrap();
        for i in 0..5 {
            log.line(Stream::Stdout, &format!("line {i}"));
        }
        assert_eq!(log.dropped(), 5);
    }

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "viewer", 10, 3).unwrap();
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            f.write(line.as_bytes()).unwrap();
        }
        let base = dir.path().join("viewer.log");
        assert_eq!(read(&base), "gggg\n");
        assert_eq!(read(&dir.path().join("viewer.log.1")), "eeee\nffff\n");
        assert_eq!(read(&dir.path().join("viewer.log.2")), "cccc\ndddd\n");
        assert!(!dir.path().join("viewer.log.3").exists());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["viewer.log", "viewer.log.1", "viewer.log.2"]);
    }

    #[test]
    fn appends_to_an_existing_log_and_counts_its_size() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("p.log"), "12345678\n").unwrap();
        let mut f = RotatingFile::open(dir.path(), "p", 12, 2).unwrap();
        f.write(b"abc\n").unwrap();
        assert_eq!(read(&dir.path().join("p.log")), "abc\n");
        assert_eq!(read(&dir.path().join("p.log.1")), "12345678\n");
    }

    #[test]
    fn a_line_longer_than_the_limit_is_still_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path(), "p", 4, 1).unwrap();
        f.write(b"0123456789\n").unwrap();
        f.write(b"x\n").unwrap();
        assert_eq!(read(&dir.path().join("p.log")), "x\n");
    }

    #[test]
    fn lines_are_stamped_with_their_stream() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            "processor",
            36,
            Console::Quiet,
            MAX_BYTES,
            FILES,
        )
        .unwrap();
        log.line(Stream::Stderr, "oops");
        log.line(Stream::Stdout, "fine");
        let text = read(&dir.path().join("processor.log"));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("Z err oops"), "{}", lines[0]);
        assert!(lines[1].ends_with("Z out fine"), "{}", lines[1]);
    }
}
