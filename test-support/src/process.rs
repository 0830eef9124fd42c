//! A child process whose output a test can await.
//!
//! [`WatchedChild::spawn`] pipes the child's stdout and stderr through two
//! threads that keep every line (and copy it to a log file, if given), so
//! a test awaits "the server printed that it listens" rather than sleeping
//! and re-reading a file. If the child exits first, the wait panics with
//! its exit status and everything it printed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::wait::Wait;

/// What the child printed so far.
#[derive(Debug, Default)]
struct Printed {
    /// Every line of stdout and stderr, in the order the threads read them.
    lines: Vec<String>,
    /// Output streams not yet at their end.
    open: usize,
}

/// A running child process with its output kept; killed on drop.
#[derive(Debug)]
pub struct WatchedChild {
    name: String,
    child: Child,
    printed: Arc<watch::Sender<Printed>>,
    readers: Vec<JoinHandle<()>>,
}

impl WatchedChild {
    /// Spawns `command` with its stdout and stderr piped, calling it `name`
    /// in messages. Every line it prints is kept, and appended to `log` if
    /// given (created if missing).
    pub fn spawn(name: &str, command: &mut Command, log: Option<&Path>) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = log.map(|path| {
            let file = File::options()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            Arc::new(Mutex::new(file))
        });
        let printed = Arc::new(watch::Sender::new(Printed::default()));
        let mut readers = Vec::new();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for stream in streams.into_iter().flatten() {
            printed.send_modify(|p| p.open += 1);
            let (printed, log) = (Arc::clone(&printed), log.clone());
            readers.push(std::thread::spawn(move || {
                copy_lines(stream, &printed, log.as_deref());
            }));
        }
        Self {
            name: name.to_owned(),
            child,
            printed,
            readers,
        }
    }

    /// Waits at most `timeout` for a line that `matches`, printed at any
    /// time since the start, and returns it; panics naming `what` if the
    /// child exits or the time passes first.
    pub async fn wait_for_line(
        &mut self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut changes = self.printed.subscribe();
        loop {
            let exited = {
                let printed = changes.borrow_and_update();
                if let Some(line) = printed.lines.iter().find(|l| matches(l)) {
                    return line.clone();
                }
                printed.open == 0
            };
            if exited {
                let status = self.child.wait().map(|s| s.to_string());
                panic!(
                    "{} exited ({}) before {what}; it printed:\n{}",
                    self.name,
                    status.unwrap_or_else(|e| e.to_string()),
                    self.output()
                );
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                panic!(
                    "timed out after {timeout:?} waiting for {what} from {}; it printed:\n{}",
                    self.name,
                    self.output()
                );
            }
        }
    }

    /// Waits at most `timeout` until something accepts TCP connections on
    /// `addr`; panics if the child exits first.
    pub async fn wait_for_port(&mut self, timeout: Duration, addr: SocketAddr) {
        let what = format!("{} to accept connections on {addr}", self.name);
        Wait::new(timeout, what)
            .for_ok(|| {
                if let Some(status) = self.try_wait() {
                    panic!(
                        "{} exited ({status}) before listening on {addr}; it printed:\n{}",
                        self.name,
                        self.output()
                    );
                }
                async move { tokio::net::TcpStream::connect(addr).await.map(drop) }
            })
            .await;
    }

    /// Everything printed so far, one line per line.
    pub fn output(&self) -> String {
        self.printed.borrow().lines.join("\n")
    }

    /// The exit status if the child has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child (SIGKILL on Unix), reaps it, and waits until all it
    /// printed is kept and in the log file.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for WatchedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps each line of `stream` (and appends it to `log`) until its end.
fn copy_lines(
    stream: Box<dyn Read + Send>,
    printed: &watch::Sender<Printed>,
    log: Option<&Mutex<File>>,
) {
    let mut stream = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match stream.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if let Some(log) = log {
            let mut file = log.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = file.write_all(&line);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        printed.send_modify(|p| p.lines.push(text));
    }
    printed.send_modify(|p| p.open -= 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]).stdin(Stdio::null());
        command
    }

    #[tokio::test]
    async fn a_line_is_awaited_and_logged() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join("child.log");
        let mut child = WatchedChild::spawn(
            "the shell",
            &mut shell("echo starting; echo 'ready on 42' >&2; exec sleep 30"),
            Some(&log),
        );
        let line = child
            .wait_for_line(Duration::from_secs(10), "readiness", |l| {
                l.starts_with("ready")
            })
            .await;
        assert_eq!(line, "ready on 42");
        child.kill();
        let logged = std::fs::read_to_string(&log).expect("the log");
        assert!(logged.contains("starting\n") && logged.contains("ready on 42\n"));
    }

    #[tokio::test]
    #[should_panic(expected = "exited (exit status: 3) before readiness; it printed:\nno luck")]
    async fn an_early_exit_is_reported_with_the_output() {
        let mut child = WatchedChild::spawn("the shell", &mut shell("echo no luck; exit 3"), None);
        child
            .wait_for_line(Duration::from_secs(10), "readiness", |l| l == "ready")
            .await;
    }
}
