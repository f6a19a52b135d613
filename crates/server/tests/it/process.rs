//! The real server binary as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{MANAGER_CHAT, TOKEN};

/// A running server binary; killed when dropped, so a failing test leaves nothing behind.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    /// Every line the server wrote to stderr (its logs), as it writes them.
    pub logs: Arc<Mutex<Vec<String>>>,
    drained: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    /// Waits for the process to exit and for its log pipe to close; returns the exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let status = self.child.wait().ok()?;
        if let Some(drained) = self.drained.take() {
            let _ = drained.join();
        }
        status.code()
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn command(database: &Database, telegram: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    for key in server::config::keys() {
        command.env_remove(key);
    }
    command
        .current_dir(std::env::temp_dir())
        .env("DEBUG", "false")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("MANAGER_CHAT_ID", MANAGER_CHAT.to_string())
        .env("TELEGRAM_API_URL", telegram)
        .env("TELEGRAM_TIMEOUT_SECS", "2")
        // The fakes answer the methods each test needs; polling is tested on its own.
        .env("TELEGRAM_UPDATES", "off")
        .env("OUTBOX_POLL_INTERVAL_MS", "100")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text");
    match database {
        Database::Url(url) => command.env("DATABASE_URL", url),
        Database::Sqlite(path) => command.env("SQLITE_PATH", path),
    };
    command
}

pub enum Database {
    Url(String),
    Sqlite(String),
}

/// Starts the binary and waits for its "serving" log line, which names the port.
pub fn start(database: &Database, telegram: &str) -> ServerProcess {
    start_with(database, telegram, &[])
}

/// Like [`start`], with extra environment variables.
pub fn start_with(database: &Database, telegram: &str, env: &[(&str, &str)]) -> ServerProcess {
    let mut command = command(database, telegram);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Arc::clone(&logs);
    let drained = std::thread::spawn(move || {
        let mut sent = false;
        // Keep draining until the pipe closes, so the child never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some((_, rest)) = line.split_once("serving on http://127.0.0.1:") {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(port.parse::<u16>().unwrap());
                sent = true;
            }
            sink.lock().unwrap().push(line);
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server did not start");
    ServerProcess {
        child,
        port,
        logs,
        drained: Some(drained),
    }
}
