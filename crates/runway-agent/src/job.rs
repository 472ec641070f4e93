//! A job's process: how the script is started, what it inherits, and how it is
//! stopped.
//!
//! **The script is a file**, `<state dir>/jobs/<id>-<attempt>/script.sh`, run as
//! `bash -eo pipefail <file>`, rather than `bash -c <script>`: Linux caps one
//! argument at 128 KiB (`MAX_ARG_STRLEN`), which a generated script can pass;
//! bash's errors then name a file and a line (`script.sh: line 12: …`); and the
//! file sits outside the workspace, because bash reads a script file as it runs
//! and a job that rewrote its own script in the workspace would run garbage.
//!
//! **One pipe for stdout and stderr.** The child gets the write end of one pipe as
//! both, so the kernel keeps its writes in the order they were made, as a
//! terminal would show them; two pipes read separately cannot. `std::io::pipe`
//! opens it close-on-exec, so when two jobs run at once neither inherits the
//! other's write end (which would keep that pipe open, and its reader waiting,
//! until the other job ended).
//!
//! **Its own process group** (`process_group(0)`): the agent signals the whole
//! group, so a cancel also reaches what the script started (`make -j`, a test
//! server), and a Ctrl-C on the agent's terminal does not reach the jobs directly;
//! the agent decides what happens to them.
//!
//! **Environment.** The agent's own environment is not passed on: it holds the
//! agent's configuration, which on the first start includes the registration
//! token. A job gets only [`INHERITED`] (and any `LC_*`) from it, so tools find
//! their binaries, home, locale, temp dir and proxy; then `CI=true`; then the job's
//! `env`; then its `secrets`; then the `RUNWAY_*` variables, which the job cannot
//! override.
//!
//! **Stopping** ([`terminate`]): SIGTERM to the group; once the script has exited,
//! the rest of the group gets what is left of the grace period to exit too; then
//! SIGKILL to the group, whatever is left. A script that ends on its own has its
//! leftovers (background processes) stopped the same way ([`reap_leftovers`]), as
//! CI runners do, so nothing outlives its job or keeps its workspace busy.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use runway_protocol::{AttemptResult, ClaimedJob};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Variables a job inherits from the agent's environment (plus every `LC_*`).
pub(crate) const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];
/// `PATH` when the agent itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How often to look whether a process group is empty.
const GROUP_POLL: Duration = Duration::from_millis(50);

/// A job environment variable that cannot be passed to a process.
#[derive(Debug, thiserror::Error)]
#[error("the job's variable `{name}` cannot be set: {reason}")]
pub struct EnvError {
    /// The variable's name (never its value, which may be a secret).
    name: String,
    reason: &'static str,
}

/// The environment of a job's script. `inherited` is the agent's environment.
pub(crate) fn job_env(
    job: &ClaimedJob,
    agent_name: &str,
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<BTreeMap<OsString, OsString>, EnvError> {
    let mut env: BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(name, _)| {
            INHERITED.iter().any(|keep| name == OsStr::new(keep))
                || name.as_bytes().starts_with(b"LC_")
        })
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.into());
    env.insert("CI".into(), "true".into());
    let job_vars = job.env.iter().map(|(k, v)| (k, v.as_str()));
    let secrets = job.secrets.iter().map(|(k, v)| (k, v.expose()));
    for (name, value) in job_vars.chain(secrets) {
        check_var(name, value)?;
        env.insert(name.into(), value.into());
    }
    for (name, value) in [
        ("RUNWAY_JOB_ID", job.id.clone()),
        ("RUNWAY_JOB_NAME", job.name.clone()),
        ("RUNWAY_ATTEMPT", job.attempt.to_string()),
        ("RUNWAY_AGENT_NAME", agent_name.to_owned()),
    ] {
        check_var(name, &value)?;
        env.insert(name.into(), value.into());
    }
    Ok(env)
}

fn check_var(name: &str, value: &str) -> Result<(), EnvError> {
    let reason = if name.is_empty() {
        "the name is empty"
    } else if name.contains('=') || name.contains('\0') {
        "the name contains `=` or a NUL byte"
    } else if value.contains('\0') {
        "the value contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(EnvError {
        name: name.to_owned(),
        reason,
    })
}

/// Writes the script file, 0600.
pub(crate) fn write_script(path: &Path, script: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(script.as_bytes())
}

/// A job's process group (its id is the script's pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessGroup(Pid);

impl ProcessGroup {
    /// Sends `signal` to every process in the group; an empty group is fine.
    pub(crate) fn signal(self, signal: Signal) {
        match killpg(self.0, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::warn!(
                pgid = self.0.as_raw(),
                signal = %signal,
                error = %err,
                "cannot signal the job's process group"
            ),
        }
    }

    /// Whether any live process is left in the group.
    ///
    /// `kill(-pgid, 0)` alone counts zombies: processes that died but that no
    /// one has reaped yet, because their parent died too and they now wait for
    /// init (or, with the agent as a container's PID 1, for nothing). So where
    /// `/proc` exists, a group whose only members are zombies counts as gone.
    pub(crate) fn is_alive(self) -> bool {
        if matches!(killpg(self.0, None), Err(Errno::ESRCH)) {
            return false;
        }
        has_live_member(self.0.as_raw()).unwrap_or(true)
    }

    async fn gone(self) {
        while self.is_alive() {
            tokio::time::sleep(GROUP_POLL).await;
        }
    }
}

/// Whether `/proc` shows a process of group `pgid` that is not a zombie; `None`
/// without a readable `/proc`.
fn has_live_member(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let live = entries.flatten().any(|entry| {
        let name = entry.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            return false;
        }
        let Ok(stat) = std::fs::read(entry.path().join("stat")) else {
            return false; // It exited while we looked.
        };
        stat_is_live_member(&stat, pgid)
    });
    Some(live)
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp …`, where `comm` may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn stat_is_live_member(stat: &[u8], pgid: i32) -> bool {
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let rest = String::from_utf8_lossy(&stat[close + 1..]);
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next();
    let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
    pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
}

/// A started script.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) group: ProcessGroup,
    /// The read end of its stdout+stderr pipe.
    pub(crate) output: pipe::Receiver,
}

/// Starts `bash -eo pipefail <script>` in `cwd` with exactly `env`.
pub(crate) fn spawn(
    script: &Path,
    cwd: &Path,
    env: &BTreeMap<OsString, OsString>,
) -> io::Result<Spawned> {
    let (reader, writer) = io::pipe()?;
    let stderr = writer.try_clone()?;
    let child = {
        let mut command = Command::new("bash");
        command
            .arg("-eo")
            .arg("pipefail")
            .arg(script)
            .current_dir(cwd)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(stderr)
            .process_group(0);
        command.spawn()?
        // `command` still holds the pipe's write ends; dropping it here leaves
        // them only in the job's processes, so the reader sees EOF when they end.
    };
    let pid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .ok_or_else(|| io::Error::other("the new process has no pid"))?;
    let output = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
    Ok(Spawned {
        child,
        group: ProcessGroup(Pid::from_raw(pid)),
        output,
    })
}

/// The kill sequence: SIGTERM to the group, up to `grace` for the script and the
/// rest of its group to exit, then SIGKILL to the group. `hurry` cuts the grace
/// short (the job turned out not to be ours any more).
pub(crate) async fn terminate(
    child: &mut Child,
    group: ProcessGroup,
    grace: Duration,
    hurry: impl Future<Output = ()>,
) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + grace;
    let mut hurry = std::pin::pin!(hurry);
    group.signal(Signal::SIGTERM);
    let status = tokio::select! {
        status = child.wait() => Some(status),
        () = tokio::time::sleep_until(deadline) => None,
        () = &mut hurry => None,
    };
    if matches!(status, Some(Ok(_))) {
        tokio::select! {
            () = group.gone() => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = &mut hurry => {}
        }
    }
    group.signal(Signal::SIGKILL);
    match status {
        Some(status) => status,
        None => child.wait().await,
    }
}

/// After the script exited on its own: stops whatever it left running in its
/// group (SIGTERM, up to `grace`, SIGKILL). Returns whether anything was left.
pub(crate) async fn reap_leftovers(group: ProcessGroup, grace: Duration) -> bool {
    if !group.is_alive() {
        return false;
    }
    group.signal(Signal::SIGTERM);
    let _ = tokio::time::timeout(grace, group.gone()).await;
    group.signal(Signal::SIGKILL);
    true
}

/// What an exit status means for `finish`: 0 succeeded; anything else, or death
/// by a signal (no exit code), failed.
pub(crate) fn result_of(status: ExitStatus) -> (AttemptResult, Option<i32>) {
    match status.code() {
        Some(0) => (AttemptResult::Succeeded, Some(0)),
        code => (AttemptResult::Failed, code),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::time::Instant as StdInstant;

    use runway_protocol::SecretValue;
    use tokio::io::AsyncReadExt as _;

    use super::*;

    struct Script {
        _dir: tempfile::TempDir,
        spawned: Spawned,
    }

    fn start(script: &str) -> Script {
        start_with_env(
            script,
            &BTreeMap::from([("PATH".into(), std::env::var_os("PATH").unwrap())]),
        )
    }

    fn start_with_env(script: &str, env: &BTreeMap<OsString, OsString>) -> Script {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.sh");
        write_script(&path, script).unwrap();
        let spawned = spawn(&path, dir.path(), env).unwrap();
        Script { _dir: dir, spawned }
    }

    async fn read_all(output: &mut pipe::Receiver) -> String {
        let mut out = Vec::new();
        output.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Reads until `needle` has appeared (the script is ready).
    async fn read_until(output: &mut pipe::Receiver, needle: &str) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&out).contains(needle) {
            let n = output.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "EOF before {needle:?}: {}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    fn claimed_job() -> ClaimedJob {
        ClaimedJob {
            id: "01JOB".into(),
            attempt: 2,
            name: "build".into(),
            script: String::new(),
            env: BTreeMap::from([
                ("FOO".into(), "bar".into()),
                ("PATH".into(), "/job/bin".into()),
                ("RUNWAY_JOB_ID".into(), "spoofed".into()),
            ]),
            secrets: BTreeMap::from([("API_KEY".into(), SecretValue("k3y-value".into()))]),
            timeout_seconds: 60,
        }
    }

    #[tokio::test]
    async fn stdout_and_stderr_are_interleaved_in_the_order_written() {
        let mut s = start(
            "echo out-1\necho err-1 >&2\necho out-2\nprintf 'err-2\\n' >&2\n\
             for i in 3 4 5; do echo out-$i; echo err-$i >&2; done\n",
        );
        let text = read_all(&mut s.spawned.output).await;
        let status = s.spawned.child.wait().await.unwrap();
        assert!(status.success());
        assert_eq!(
            text,
            "out-1\nerr-1\nout-2\nerr-2\nout-3\nerr-3\nout-4\nerr-4\nout-5\nerr-5\n"
        );
    }

    #[tokio::test]
    async fn the_script_runs_under_errexit_and_pipefail() {
        let mut s = start("false | true\necho not reached\n");
        let text = read_all(&mut s.spawned.output).await;
        let status = s.spawned.child.wait().await.unwrap();
        assert_eq!(result_of(status), (AttemptResult::Failed, Some(1)));
        assert_eq!(text, "");
    }

    #[tokio::test]
    async fn a_script_that_traps_sigterm_sees_it_and_exits_within_the_grace() {
        let mut s = start(
            "trap 'echo got TERM; exit 3' TERM\necho ready\nwhile true; do sleep 0.1; done\n",
        );
        read_until(&mut s.spawned.output, "ready").await;
        let started = StdInstant::now();
        let status = terminate(
            &mut s.spawned.child,
            s.spawned.group,
            Duration::from_secs(5),
            std::future::pending(),
        )
        .await
        .unwrap();
        let text = read_all(&mut s.spawned.output).await;
        assert!(text.contains("got TERM"), "{text:?}");
        assert_eq!(status.code(), Some(3));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(!s.spawned.group.is_alive());
    }

    #[tokio::test]
    async fn a_script_that_ignores_sigterm_is_killed_after_the_grace() {
        let mut s = start("trap '' TERM\necho ready\nwhile true; do sleep 0.1; done\n");
        read_until(&mut s.spawned.output, "ready").await;
        let grace = Duration::from_millis(700);
        let started = StdInstant::now();
        let status = terminate(
            &mut s.spawned.child,
            s.spawned.group,
            grace,
            std::future::pending(),
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert_eq!(result_of(status), (AttemptResult::Failed, None));
        assert!(elapsed >= grace, "{elapsed:?}");
        assert!(elapsed < grace + Duration::from_secs(3), "{elapsed:?}");
        // The whole group went, not only bash.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!s.spawned.group.is_alive());
    }

    #[tokio::test]
    async fn hurrying_a_kill_sequence_skips_the_rest_of_the_grace() {
        let mut s = start("trap '' TERM\necho ready\nwhile true; do sleep 0.1; done\n");
        read_until(&mut s.spawned.output, "ready").await;
        let started = StdInstant::now();
        let status = terminate(
            &mut s.spawned.child,
            s.spawned.group,
            Duration::from_secs(30),
            tokio::time::sleep(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_background_process_left_by_the_script_is_stopped_afterwards() {
        let mut s = start("sleep 300 &\necho started $!\n");
        let status = s.spawned.child.wait().await.unwrap();
        assert!(status.success());
        assert!(
            s.spawned.group.is_alive(),
            "the background sleep should still run"
        );
        assert!(reap_leftovers(s.spawned.group, Duration::from_secs(5)).await);
        // With the group gone, the pipe's last writer is gone too.
        let text = read_all(&mut s.spawned.output).await;
        assert!(text.starts_with("started "));
        assert!(!s.spawned.group.is_alive());
        assert!(!reap_leftovers(s.spawned.group, Duration::from_secs(5)).await);
    }

    #[test]
    fn a_group_of_only_zombies_counts_as_gone() {
        let live = b"4242 (sleep) S 1 4242 4242 0 -1 4194560";
        let zombie = b"4243 (sleep) Z 1 4242 4242 0 -1 4194560";
        let odd_name = b"4244 (a) b (c) R 1 4242 4242 0 -1 0";
        assert!(stat_is_live_member(live, 4242));
        assert!(!stat_is_live_member(zombie, 4242));
        assert!(stat_is_live_member(odd_name, 4242));
        assert!(!stat_is_live_member(live, 999));
        assert!(!stat_is_live_member(b"garbage", 4242));
    }

    #[test]
    fn the_agents_environment_does_not_leak_into_the_job() {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/ci"),
            ("LC_ALL", "C.UTF-8"),
            ("RUNWAY_AGENT_REGISTRATION_TOKEN", "rwr_secret"),
            ("AWS_SECRET_ACCESS_KEY", "nope"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = job_env(&claimed_job(), "builder-1", inherited).unwrap();
        let get = |k: &str| env.get(OsStr::new(k)).and_then(|v| v.to_str());
        assert_eq!(get("RUNWAY_AGENT_REGISTRATION_TOKEN"), None);
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(get("HOME"), Some("/home/ci"));
        assert_eq!(get("LC_ALL"), Some("C.UTF-8"));
        // The job's env wins over the inherited one ...
        assert_eq!(get("PATH"), Some("/job/bin"));
        assert_eq!(get("FOO"), Some("bar"));
        assert_eq!(get("API_KEY"), Some("k3y-value"));
        assert_eq!(get("CI"), Some("true"));
        // ... but not over the agent's RUNWAY_* variables.
        assert_eq!(get("RUNWAY_JOB_ID"), Some("01JOB"));
        assert_eq!(get("RUNWAY_JOB_NAME"), Some("build"));
        assert_eq!(get("RUNWAY_ATTEMPT"), Some("2"));
        assert_eq!(get("RUNWAY_AGENT_NAME"), Some("builder-1"));
    }

    #[test]
    fn a_path_is_provided_when_the_agent_has_none() {
        let mut job = claimed_job();
        job.env.clear();
        let env = job_env(&job, "a", []).unwrap();
        assert_eq!(env.get(OsStr::new("PATH")).unwrap(), DEFAULT_PATH);
    }

    #[test]
    fn a_variable_name_with_an_equals_sign_is_refused_by_name_without_its_value() {
        let mut job = claimed_job();
        job.secrets
            .insert("BAD=NAME".into(), SecretValue("topsecret".into()));
        let err = job_env(&job, "a", []).unwrap_err().to_string();
        assert!(err.contains("BAD=NAME"), "{err}");
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[tokio::test]
    async fn the_script_sees_exactly_the_environment_it_was_given() {
        let inherited = [("PATH".into(), std::env::var_os("PATH").unwrap())];
        let env = job_env(&claimed_job(), "builder-1", inherited).unwrap();
        let mut env = env;
        env.insert("PATH".into(), std::env::var_os("PATH").unwrap());
        let mut s = start_with_env(
            "echo \"$RUNWAY_JOB_ID $RUNWAY_ATTEMPT $FOO $API_KEY $CI ${HOME:-nohome}\"\n",
            &env,
        );
        let text = read_all(&mut s.spawned.output).await;
        s.spawned.child.wait().await.unwrap();
        assert_eq!(text, "01JOB 2 bar k3y-value true nohome\n");
    }
}
