//! The agent's state directory: its token, its journal and its jobs' spools.
//!
//! ```text
//! <state dir>/            0700
//!   agent.json            0600  {"agent_id", "name", "server_url", "token"}
//!   journal.jsonl         0600  one line per attempt run, appended when it ends
//!   jobs/<id>-<attempt>/        the attempt's script and log spool, while it runs
//! ```
//!
//! `agent.json` holds the agent token, the one credential that survives restarts,
//! so it is written with mode 0600 from the start (never created wider and then
//! narrowed) to a temporary file that is fsynced and renamed over the old one: a
//! crash leaves the old file or the new, never half of one, and never a token that
//! was registered but not saved.
//!
//! The journal is the agent's own record of what it ran and when: one JSON object
//! per line, written with a single `write` on an `O_APPEND` file, so concurrent
//! attempts (capacity > 1) never interleave within a line.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use runway_protocol::{AttemptResult, Token};
use serde::{Deserialize, Serialize};

const AGENT_FILE: &str = "agent.json";
const JOURNAL_FILE: &str = "journal.jsonl";
const JOBS_DIR: &str = "jobs";

/// What the agent keeps between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SavedAgent {
    pub(crate) agent_id: String,
    pub(crate) name: String,
    /// The server it registered with; a different `RUNWAY_AGENT_SERVER_URL` later is
    /// worth a warning, since the token will not work there.
    pub(crate) server_url: String,
    pub(crate) token: Token,
}

/// How an attempt ended, as the journal records it: the protocol's results plus
/// `lost` (the server took the job back, so no result was reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JournalResult {
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    Lost,
}

impl From<AttemptResult> for JournalResult {
    fn from(result: AttemptResult) -> Self {
        match result {
            AttemptResult::Succeeded => Self::Succeeded,
            AttemptResult::Failed => Self::Failed,
            AttemptResult::Canceled => Self::Canceled,
            AttemptResult::TimedOut => Self::TimedOut,
        }
    }
}

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) job_id: String,
    pub(crate) attempt: u32,
    /// Unix milliseconds when the script was started.
    pub(crate) started_at_ms: u64,
    /// Unix milliseconds when its process group was gone.
    pub(crate) finished_at_ms: u64,
    pub(crate) result: JournalResult,
    pub(crate) exit_code: Option<i32>,
}

/// A state-directory operation that failed, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a saved agent; remove it to register again")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The state directory, created (0700) when opened.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub(crate) fn open(root: &Path) -> Result<Self, StateError> {
        create_private_dir(root).map_err(|source| StateError::CreateDir {
            path: root.to_owned(),
            source,
        })?;
        if let Ok(meta) = fs::metadata(root)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %root.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the state directory is readable by other users; its token file is not, \
                 but its job logs are: chmod 700 it"
            );
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub(crate) fn agent_file(&self) -> PathBuf {
        self.root.join(AGENT_FILE)
    }

    pub(crate) fn journal_file(&self) -> PathBuf {
        self.root.join(JOURNAL_FILE)
    }

    /// Where the attempts' scripts and spools live.
    pub(crate) fn jobs_dir(&self) -> PathBuf {
        self.root.join(JOBS_DIR)
    }

    /// The saved agent, if there is one.
    pub(crate) fn load_agent(&self) -> Result<Option<SavedAgent>, StateError> {
        let path = self.agent_file();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Saves the agent atomically, mode 0600.
    pub(crate) fn save_agent(&self, agent: &SavedAgent) -> Result<(), StateError> {
        let path = self.agent_file();
        let mut bytes = serde_json::to_vec_pretty(agent).expect("plain strings serialize");
        bytes.push(b'\n');
        write_atomically(&path, &bytes).map_err(|source| StateError::Write { path, source })
    }

    /// Appends one line to the journal.
    pub(crate) fn append_journal(&self, entry: &JournalEntry) -> Result<(), StateError> {
        let path = self.journal_file();
        let mut line = serde_json::to_vec(entry).expect("plain fields serialize");
        line.push(b'\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(&line))
            .map_err(|source| StateError::Write { path, source })
    }
}

/// `mkdir -p` whose new directories are 0700.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A leftover temp file from a crash may have other bits; make sure.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> SavedAgent {
        SavedAgent {
            agent_id: "01AGENT".into(),
            name: "builder-1".into(),
            server_url: "http://127.0.0.1:8080/".into(),
            token: Token("rwa_secret_token".into()),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_saved_token_file_is_0600_in_a_0700_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/state");
        let state = StateDir::open(&root).unwrap();
        state.save_agent(&saved()).unwrap();
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&state.agent_file()), 0o600);
        // Saving again (atomic replace) keeps the mode and leaves no temp file.
        state.save_agent(&saved()).unwrap();
        assert_eq!(mode(&state.agent_file()), 0o600);
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [AGENT_FILE]);
    }

    #[test]
    fn a_saved_agent_is_loaded_back_and_none_is_saved_at_first() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        assert_eq!(state.load_agent().unwrap(), None);
        state.save_agent(&saved()).unwrap();
        assert_eq!(state.load_agent().unwrap(), Some(saved()));
    }

    #[test]
    fn a_corrupt_agent_file_is_an_error_that_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        fs::write(state.agent_file(), "{not json").unwrap();
        let err = state.load_agent().unwrap_err();
        assert!(err.to_string().contains("agent.json"), "{err}");
    }

    #[test]
    fn the_journal_gets_one_json_line_per_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        let entry = |attempt, result, exit_code| JournalEntry {
            job_id: "01JOB".into(),
            attempt,
            started_at_ms: 1_000,
            finished_at_ms: 2_000,
            result,
            exit_code,
        };
        state
            .append_journal(&entry(1, JournalResult::Lost, None))
            .unwrap();
        state
            .append_journal(&entry(2, JournalResult::TimedOut, Some(143)))
            .unwrap();
        let text = fs::read_to_string(state.journal_file()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({"job_id":"01JOB","attempt":1,"started_at_ms":1000,
                    "finished_at_ms":2000,"result":"lost","exit_code":null}),
                serde_json::json!({"job_id":"01JOB","attempt":2,"started_at_ms":1000,
                    "finished_at_ms":2000,"result":"timed_out","exit_code":143}),
            ]
        );
        assert_eq!(mode(&state.journal_file()), 0o600);
    }
}
