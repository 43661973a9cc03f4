//! Asking Asterisk to load the regenerated files: through AMI (the
//! manager interface, `Action: Command`) or by running a command such as
//! `asterisk -rx` once per CLI command.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long one reload may take before it counts as failed.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The command exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The full command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// No answer in time.
    #[error("reload timed out after {0:?}")]
    Timeout(Duration),
    /// AMI I/O failed.
    #[error("AMI at {addr}: {source}")]
    AmiIo {
        /// Manager address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// AMI answered with an error.
    #[error("AMI at {addr} refused {action}: {message}")]
    AmiRefused {
        /// Manager address.
        addr: SocketAddr,
        /// The action.
        action: String,
        /// Asterisk's message.
        message: String,
    },
}

/// How to reload.
#[derive(Clone)]
pub enum Reloader {
    /// Do not reload (files only; tests, or an operator reloading by hand).
    None,
    /// Run `program args… "<cli command>"` once per CLI command.
    Command {
        /// e.g. `asterisk`.
        program: String,
        /// e.g. `["-rx"]`.
        args: Vec<String>,
    },
    /// Log in to AMI and send `Action: Command` per CLI command.
    Ami {
        /// Manager address, e.g. `127.0.0.1:5038`.
        addr: SocketAddr,
        /// `manager.conf` user.
        username: String,
        /// Its secret.
        secret: String,
    },
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reloader::None => f.write_str("None"),
            Reloader::Command { program, args } => {
                write!(f, "Command({program} {})", args.join(" "))
            }
            Reloader::Ami { addr, username, .. } => write!(f, "Ami({username}@{addr})"),
        }
    }
}

impl Reloader {
    /// Builds a command reloader from a command line such as
    /// `asterisk -rx` (split on whitespace).
    pub fn command(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace().map(str::to_owned);
        let program = parts.next()?;
        Some(Reloader::Command {
            program,
            args: parts.collect(),
        })
    }

    /// Runs every CLI command in order; stops at the first failure.
    pub async fn reload(&self, commands: &[&str]) -> Result<(), ReloadError> {
        match tokio::time::timeout(RELOAD_TIMEOUT, self.reload_inner(commands)).await {
            Ok(r) => r,
            Err(_) => Err(ReloadError::Timeout(RELOAD_TIMEOUT)),
        }
    }

    async fn reload_inner(&self, commands: &[&str]) -> Result<(), ReloadError> {
        match self {
            Reloader::None => Ok(()),
            Reloader::Command { program, args } => {
                for cmd in commands {
                    run_command(program, args, cmd).await?;
                }
                Ok(())
            }
            Reloader::Ami {
                addr,
                username,
                secret,
            } => ami(*addr, username, secret, commands).await,
        }
    }
}

async fn run_command(program: &str, args: &[String], cli: &str) -> Result<(), ReloadError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .arg(cli)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ReloadError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(ReloadError::Command {
        command: format!("{program} {} {cli:?}", args.join(" ")),
        status: out.status.to_string(),
        stderr: tail,
    })
}

/// One AMI message: `Key: Value` lines up to a blank line.
type Block = Vec<(String, String)>;

fn field<'a>(b: &'a Block, key: &str) -> Option<&'a str> {
    b.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

async fn read_block(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<Block> {
    let mut block = Block::new();
    let mut line = String::new();
    let mut in_follows = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if in_follows {
            // Asterisk < 14 answers Command with headers, then free text up
            // to this marker. Header-looking lines are kept (ActionID is
            // among them); the rest is command output.
            if l == "--END COMMAND--" {
                in_follows = false;
            } else if let Some((k, v)) = l.split_once(": ") {
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    block.push((k.to_owned(), v.trim().to_owned()));
                }
            }
            continue;
        }
        if l.is_empty() {
            if block.is_empty() {
                continue;
            }
            return Ok(block);
        }
        match l.split_once(':') {
            Some((k, v)) => {
                if k.eq_ignore_ascii_case("Response") && v.trim() == "Follows" {
                    in_follows = true;
                }
                block.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            None => block.push((String::new(), l.to_owned())),
        }
    }
}

async fn ami(
    addr: SocketAddr,
    user: &str,
    secret: &str,
    commands: &[&str],
) -> Result<(), ReloadError> {
    let io = |source| ReloadError::AmiIo { addr, source };
    let stream = TcpStream::connect(addr).await.map_err(io)?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut banner = String::new();
    rd.read_line(&mut banner).await.map_err(io)?;
    if !banner.starts_with("Asterisk Call Manager") {
        return Err(ReloadError::AmiRefused {
            addr,
            action: "connect".into(),
            message: format!("unexpected banner {:?}", banner.trim()),
        });
    }
    let mut actions: Vec<(String, String)> = vec![(
        "Login".into(),
        format!("Action: Login\r\nActionID: myturn-0\r\nUsername: {user}\r\nSecret: {secret}\r\nEvents: off\r\n\r\n"),
    )];
    for (i, cmd) in commands.iter().enumerate() {
        actions.push((
            format!("Command {cmd:?}"),
            format!(
                "Action: Command\r\nActionID: myturn-{}\r\nCommand: {cmd}\r\n\r\n",
                i + 1
            ),
        ));
    }
    for (i, (name, text)) in actions.iter().enumerate() {
        wr.write_all(text.as_bytes()).await.map_err(io)?;
        let id = format!("myturn-{i}");
        loop {
            let b = read_block(&mut rd).await.map_err(io)?;
            if field(&b, "Event").is_some() || field(&b, "ActionID") != Some(id.as_str()) {
                continue;
            }
            match field(&b, "Response") {
                Some("Success") | Some("Follows") => break,
                _ => {
                    return Err(ReloadError::AmiRefused {
                        addr,
                        action: name.clone(),
                        message: field(&b, "Message").unwrap_or("no message").to_owned(),
                    })
                }
            }
        }
    }
    let _ = wr
        .write_all(b"Action: Logoff\r\nActionID: myturn-bye\r\n\r\n")
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    /// A scripted AMI peer (a unit-test mock of Asterisk's manager).
    async fn fake_ami(
        accept_secret: &'static str,
        legacy: bool,
    ) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (rd, mut wr) = s.into_split();
            let mut rd = BufReader::new(rd);
            wr.write_all(b"Asterisk Call Manager/7.0.3\r\n")
                .await
                .unwrap();
            loop {
                let Ok(b) = read_block(&mut rd).await else {
                    return;
                };
                let id = field(&b, "ActionID").unwrap_or("").to_owned();
                let action = field(&b, "Action").unwrap_or("").to_owned();
                seen2.lock().unwrap().push(match field(&b, "Command") {
                    Some(c) => format!("{action}:{c}"),
                    None => action.clone(),
                });
                let reply = match action.as_str() {
                    "Login" if field(&b, "Secret") == Some(accept_secret) => {
                        format!("Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\nResponse: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n")
                    }
                    "Login" => format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n"),
                    "Command" if legacy => format!("Response: Follows\r\nActionID: {id}\r\nPrivilege: Command\r\nReloading...\r\n--END COMMAND--\r\n\r\n"),
                    "Command" => format!("Response: Success\r\nActionID: {id}\r\nMessage: Command output follows\r\nOutput: \r\n\r\n"),
                    _ => return,
                };
                wr.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn ami_logs_in_and_runs_each_command() {
        for legacy in [false, true] {
            let (addr, seen) = fake_ami("s3cret", legacy).await;
            let r = Reloader::Ami {
                addr,
                username: "myturn".into(),
                secret: "s3cret".into(),
            };
            r.reload(&["sip reload", "dialplan reload"]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                *seen.lock().unwrap(),
                vec![
                    "Login",
                    "Command:sip reload",
                    "Command:dialplan reload",
                    "Logoff"
                ]
            );
        }
    }

    #[tokio::test]
    async fn ami_bad_secret_is_a_clear_error() {
        let (addr, _) = fake_ami("right", false).await;
        let r = Reloader::Ami {
            addr,
            username: "myturn".into(),
            secret: "wrong".into(),
        };
        let e = r.reload(&["sip reload"]).await.unwrap_err();
        assert!(e.to_string().contains("Authentication failed"), "{e}");
    }

    #[tokio::test]
    async fn ami_down_is_an_io_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = Reloader::Ami {
            addr,
            username: "u".into(),
            secret: "s".into(),
        };
        assert!(matches!(
            r.reload(&["x"]).await,
            Err(ReloadError::AmiIo { .. })
        ));
    }

    #[tokio::test]
    async fn command_reloader_passes_the_cli_command_as_one_argument() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = dir.path().join("fake-asterisk.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$1|$2\" >> {}\n", log.display()),
        )
        .unwrap();
        let r = Reloader::command(&format!("sh {} -rx", script.display())).unwrap();
        r.reload(&["sip reload", "dialplan reload"]).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "-rx|sip reload\n-rx|dialplan reload\n"
        );
    }

    #[tokio::test]
    async fn failing_command_reports_status_and_stderr() {
        let r = Reloader::command("sh -c").unwrap();
        let e = r
            .reload(&["echo 'Unable to connect to remote asterisk' >&2; exit 1"])
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("Unable to connect"), "{msg}");
        let e = Reloader::command("/nonexistent/asterisk -rx")
            .unwrap()
            .reload(&["x"])
            .await
            .unwrap_err();
        assert!(matches!(e, ReloadError::Spawn { .. }));
    }
}
