//! The agent side: registration, heartbeats, the long-poll claim, leases, log chunks
//! and the end of an attempt.
//!
//! ## The claim is a long poll that nothing polls
//!
//! An agent asks for work with `wait = S`. The service tries the store's claim
//! (a conditional write: exactly once, however many agents race); if nothing fits,
//! it parks the request on a [`tokio::sync::watch`] channel that every change which
//! makes a job claimable bumps (a submission, a lost attempt re-queued, a retry),
//! and tries again the moment it is woken, until `S` (capped by
//! [`DispatchSettings::claim_wait_max`]) runs out. So a job submitted to an idle
//! fleet is claimed within one store round trip, with no polling interval on either
//! side. The channel is one per process, not per queue: a wake-up that finds
//! nothing for this agent costs one more claim query, and a fleet big enough for
//! that to matter is a fleet on DynamoDB, where the wait is 0 anyway.
//!
//! On Lambda every second a request waits is billed, so there the cap is 0 and the
//! answer tells the agent to come back after [`DispatchSettings::poll_interval`]
//! instead (DEPLOYMENT.md has the arithmetic). Several Lambda instances share no
//! memory, so the wake channel only ever helps the one process that runs locally.
//!
//! ## Tokens
//!
//! A claim mints a job token (`rwj_…`) whose hash the store keeps with the new
//! attempt; [`Service::authenticate_job`] checks a presented one against the job
//! named in the route, so it is good for exactly that attempt of that job, until
//! [`Attempt::job_token_expires_at`]. An agent whose attempt was superseded (lost,
//! then retried elsewhere) is told [`Conflict::NotHeld`], never "unauthorized", so
//! it stops the job instead of giving up on its own credential.
//!
//! ## Opportunistic reaping
//!
//! A claim also runs the reaper, at most once per
//! [`DispatchSettings::reap_on_claim_every`] per process: where no background task
//! runs (a Lambda between EventBridge ticks), lost work still comes back as soon
//! as anyone asks for work.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use runway_core::OffsetDateTime;
use runway_core::agent::{Agent, AgentMetrics, AgentState, HEARTBEAT_INTERVAL, OFFLINE_AFTER};
use runway_core::audit::AuditAction;
use runway_core::id::{AgentId, JobId, RegistrationTokenId};
use runway_core::job::{Attempt, DEFAULT_QUEUE, FieldError, JobDetail, validate_label};
use runway_core::lifecycle::{AttemptEnd, JobStatus, is_held};
use runway_core::log::{CHUNK_MAX_BYTES, LOG_MAX_BYTES, LogAppend, LogChunk};
use runway_core::secret::{IssuedToken, Secret, TokenHash, TokenKind};
use runway_core::store::{Claim, ClaimRequest, Conflict, LogStore, Store, StoreError};
use runway_protocol::{AgentAction, AttemptResult, FinishRequest, HeartbeatRequest, Timings};
use tokio::sync::watch;

use crate::audit::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::limits::{LimitSettings, Limits};
use crate::reaper::{self, ReapReport};

/// The longest agent name.
pub const MAX_AGENT_NAME_LEN: usize = 100;
/// The longest agent version string.
pub const MAX_VERSION_LEN: usize = 64;
/// The most jobs one agent may run at once.
pub const MAX_CAPACITY: u32 = 64;
/// Time between SIGTERM and SIGKILL on cancel, in seconds.
pub const CANCEL_GRACE_SECONDS: u32 = 10;
/// How often an agent sends buffered log output, at the least.
pub const LOG_FLUSH_INTERVAL_MS: u32 = 500;
/// The most running job ids a heartbeat may report (twice the largest capacity).
pub const MAX_REPORTED_JOBS: usize = 2 * MAX_CAPACITY as usize;

/// The dispatch settings the server chooses (`RUNWAY_JOB_LEASE_SECONDS`, …).
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// How long a claim or a renewal holds a job.
    pub lease: time::Duration,
    /// The longest a claim may wait for work (20 s locally, 0 on Lambda).
    pub claim_wait_max: Duration,
    /// How long an agent should wait after an empty claim (0 locally: the claim
    /// itself waited; a few seconds on Lambda).
    pub poll_interval: Duration,
    /// How long a job may stay queued before it expires.
    pub queue_ttl: time::Duration,
    /// The reaper runs from a claim at most this often.
    pub reap_on_claim_every: Duration,
    /// Whether a lease renewal may wait (up to the renewal interval) for a cancel,
    /// so a cancel reaches even a silent job at once. Off on Lambda, where waiting
    /// is billed.
    pub lease_waits: bool,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            lease: time::Duration::seconds(120),
            claim_wait_max: Duration::from_secs(20),
            poll_interval: Duration::ZERO,
            queue_ttl: time::Duration::days(1),
            reap_on_claim_every: Duration::from_secs(15),
            lease_waits: true,
        }
    }
}

/// The application: every store, the settings, and the wake-up channels. Cheap to
/// clone (everything is shared).
#[derive(Clone)]
pub struct Service {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) logs: Arc<dyn LogStore>,
    pub(crate) settings: DispatchSettings,
    /// The abuse limits (registration here; sign-in and token creation through
    /// [`Service::limits`]).
    limits: Limits,
    /// Bumped whenever a job becomes claimable.
    work: Arc<watch::Sender<u64>>,
    /// Bumped whenever a log grows or an attempt ends, for live log streams.
    log_growth: Arc<watch::Sender<u64>>,
    /// Bumped whenever a held job is asked to cancel or taken from its agent, for
    /// lease renewals waiting to hear it.
    job_changed: Arc<watch::Sender<u64>>,
    /// When a claim last ran the reaper.
    last_reap: Arc<Mutex<Option<Instant>>>,
    /// Set when the server shuts down: waiting claims answer at once.
    closing: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("store", &self.store.backend())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What a heartbeat asks of the agent.
#[derive(Debug, Clone)]
pub struct HeartbeatOutcome {
    /// The agent after the heartbeat.
    pub agent: Agent,
    /// What it should do as a whole.
    pub action: AgentAction,
    /// Of the jobs it reported, those to stop.
    pub cancel_job_ids: Vec<JobId>,
}

/// A job as its agent sees it: the job, and which of its attempts the token is for.
#[derive(Debug, Clone)]
pub struct HeldJob {
    /// The job and its attempts.
    pub detail: JobDetail,
    /// The attempt the presented job token belongs to.
    pub attempt: u32,
}

/// Why a job token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum JobTokenError {
    /// Not a job token, not this job's, or expired: 401.
    #[error("the job token is unknown or expired")]
    Unauthorized,
    /// The job does not exist: 404.
    #[error("no such job")]
    NoSuchJob,
    /// The store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The answer to `start` and `lease`.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// When it now runs out.
    pub expires_at: OffsetDateTime,
    /// Whether the agent must stop the job.
    pub cancel: bool,
}

/// The answer to `finish`.
#[derive(Debug, Clone)]
pub enum Finish {
    /// The attempt ended; the job is in its new status.
    Done(JobStatus),
    /// Log bytes are missing from this offset on; nothing was finished.
    Pending {
        /// Send the log from here, then finish again.
        next_offset: u64,
    },
}

/// A validated registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Display name.
    pub name: String,
    /// Region label.
    pub region: Option<String>,
    /// Labels (`*` allowed).
    pub labels: Vec<String>,
    /// Queue.
    pub queue: String,
    /// Capacity, 1–64.
    pub capacity: u32,
    /// Agent version.
    pub version: Option<String>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

impl Registration {
    /// Checks an agent's registration request.
    ///
    /// # Errors
    /// The first field out of bounds.
    pub fn from_request(req: runway_protocol::RegisterRequest) -> Result<Self, FieldError> {
        let name = req.name.trim();
        if name.is_empty() || req.name.chars().count() > MAX_AGENT_NAME_LEN {
            return Err(FieldError::new(
                "name",
                format!("must be 1 to {MAX_AGENT_NAME_LEN} characters"),
            ));
        }
        check_text("name", &req.name, MAX_AGENT_NAME_LEN)?;
        if let Some(region) = &req.region {
            validate_label("region", region)?;
        }
        if req.labels.len() > runway_core::job::limits::LABELS_MAX {
            return Err(FieldError::new(
                "labels",
                format!("at most {} labels", runway_core::job::limits::LABELS_MAX),
            ));
        }
        for (i, label) in req.labels.iter().enumerate() {
            // `*` is an agent's way to say "any job": it is never a job's label.
            if label != "*" {
                validate_label(&format!("labels[{i}]"), label)?;
            }
        }
        if let Some(queue) = &req.queue {
            validate_label("queue", queue)?;
        }
        let capacity = req.capacity.unwrap_or(1);
        if !(1..=MAX_CAPACITY).contains(&capacity) {
            return Err(FieldError::new(
                "capacity",
                format!("must be between 1 and {MAX_CAPACITY}, got {capacity}"),
            ));
        }
        if let Some(version) = &req.version {
            if version.is_empty() {
                return Err(FieldError::new("version", "must not be empty"));
            }
            check_text("version", version, MAX_VERSION_LEN)?;
        }
        Ok(Self {
            name: name.to_owned(),
            region: req.region,
            labels: req.labels,
            queue: req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            capacity,
            version: req.version,
        })
    }
}

fn seconds_u32(d: time::Duration) -> u32 {
    u32::try_from(d.whole_seconds().max(0)).unwrap_or(u32::MAX)
}

fn std_seconds_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

impl Service {
    /// The application on `store` (records) and `logs`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, logs: Arc<dyn LogStore>, settings: DispatchSettings) -> Self {
        Self {
            limits: Limits::new(Arc::clone(&store), LimitSettings::default()),
            store,
            logs,
            settings,
            work: Arc::new(watch::channel(0).0),
            log_growth: Arc::new(watch::channel(0).0),
            job_changed: Arc::new(watch::channel(0).0),
            last_reap: Arc::new(Mutex::new(None)),
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// The server is shutting down: every waiting claim answers "nothing" now and
    /// live log streams end, so the drain does not wait out their timeouts.
    pub fn close(&self) {
        self.closing.send_replace(true);
        self.log_grew();
    }

    /// Whether [`Service::close`] was called.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Resolves once [`Service::close`] is called.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    /// The same service with the abuse limits in `settings` instead of the
    /// defaults.
    #[must_use]
    pub fn with_limits(mut self, settings: LimitSettings) -> Self {
        self.limits = Limits::new(Arc::clone(&self.store), settings);
        self
    }

    /// The abuse limits, on this service's store.
    #[must_use]
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The record store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The log store.
    #[must_use]
    pub fn logs(&self) -> &Arc<dyn LogStore> {
        &self.logs
    }

    /// The settings.
    #[must_use]
    pub const fn settings(&self) -> &DispatchSettings {
        &self.settings
    }

    /// Wakes every waiting claim: a job became claimable.
    pub(crate) fn work_arrived(&self) {
        self.work.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes every waiting lease renewal: some held job was canceled or taken away.
    pub(crate) fn job_changed(&self) {
        self.job_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes every live log stream.
    pub(crate) fn log_grew(&self) {
        self.log_growth.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes whenever some log grows or some attempt ends.
    #[must_use]
    pub fn log_growth(&self) -> watch::Receiver<u64> {
        self.log_growth.subscribe()
    }

    /// The timings agents follow.
    #[must_use]
    pub fn timings(&self) -> Timings {
        Timings {
            heartbeat_interval_seconds: seconds_u32(HEARTBEAT_INTERVAL),
            offline_after_seconds: seconds_u32(OFFLINE_AFTER),
            job_lease_seconds: seconds_u32(self.settings.lease),
            lease_renew_interval_seconds: (seconds_u32(self.settings.lease) / 3).max(1),
            claim_wait_max_seconds: std_seconds_u32(self.settings.claim_wait_max),
            poll_interval_seconds: std_seconds_u32(self.settings.poll_interval),
            cancel_grace_seconds: CANCEL_GRACE_SECONDS,
            log_flush_interval_ms: LOG_FLUSH_INTERVAL_MS,
            log_chunk_max_bytes: CHUNK_MAX_BYTES as u64,
            log_max_bytes: LOG_MAX_BYTES,
        }
    }

    /// Registers an agent with the registration token whose hash is given, from
    /// the client address `ip`; returns the agent and its token (shown once).
    /// Every attempt counts against the registration limits, per token and per
    /// address ([`Limits::check_registration`]).
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; [`ServiceError::NotFound`]`("registration
    /// token")` if the token is unknown, expired, used up or revoked; store
    /// failures.
    pub async fn register_agent(
        &self,
        registration_token: &TokenHash,
        registration: Registration,
        ip: Option<&str>,
        request_id: Option<String>,
    ) -> ServiceResult<(Agent, Secret)> {
        self.limits
            .check_registration(registration_token, ip, request_id.as_deref())
            .await?;
        let now = OffsetDateTime::now_utc();
        let issued = IssuedToken::new(TokenKind::Agent);
        let agent = Agent {
            id: AgentId::new(),
            name: registration.name,
            region: registration.region,
            labels: registration.labels,
            queue: registration.queue,
            capacity: registration.capacity,
            state: AgentState::Active,
            version: registration.version,
            created_at: now,
            last_heartbeat_at: None,
            metrics: AgentMetrics::default(),
            // Filled in by the store from the registration token.
            registration_token_id: RegistrationTokenId::new(),
            token_hash: issued.hash,
        };
        // The store adds which registration token admitted the agent.
        let audit =
            Caller::agent(&agent, request_id).event(AuditAction::AgentRegistered, agent.id, None);
        let agent = self
            .store
            .register_agent(registration_token, agent, now, &audit)
            .await
            .map_err(ServiceError::or_not_found("registration token"))?;
        Ok((agent, issued.plaintext))
    }

    /// What the server wants of an agent in `state`.
    #[must_use]
    pub const fn action_for(state: AgentState) -> AgentAction {
        match state {
            AgentState::Active => AgentAction::None,
            AgentState::Paused => AgentAction::Pause,
            AgentState::Draining => AgentAction::Drain,
        }
    }

    /// Records a heartbeat and works out which of the reported jobs the agent must
    /// stop: those canceled, and those that are no longer its own (lost, retried
    /// elsewhere, gone).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a metric out of range or too many job ids;
    /// `NotFound("agent")` if the agent was deleted meanwhile; store failures.
    pub async fn heartbeat(
        &self,
        agent: &Agent,
        report: HeartbeatRequest,
    ) -> ServiceResult<HeartbeatOutcome> {
        let metrics = AgentMetrics {
            cpu_percent: report.cpu_percent,
            memory_percent: report.memory_percent,
            disk_percent: report.disk_percent,
            load_average: report.load_average,
            running_jobs: report.running_jobs,
        };
        metrics.validate().map_err(|message| {
            let (field, message) = message.split_once(' ').unwrap_or(("metrics", &message));
            FieldError::new(field, message.to_owned())
        })?;
        if report.running_job_ids.len() > MAX_REPORTED_JOBS {
            return Err(FieldError::new(
                "running_job_ids",
                format!("at most {MAX_REPORTED_JOBS} ids"),
            )
            .into());
        }
        let mut reported = Vec::with_capacity(report.running_job_ids.len());
        for (i, id) in report.running_job_ids.iter().enumerate() {
            let id: JobId = id
                .parse()
                .map_err(|_| FieldError::new(format!("running_job_ids[{i}]"), "is not a job id"))?;
            reported.push(id);
        }
        let now = OffsetDateTime::now_utc();
        let agent = self
            .store
            .record_heartbeat(agent.id, &metrics.rounded(), now)
            .await
            .map_err(ServiceError::or_not_found("agent"))?;
        let mut cancel_job_ids = Vec::new();
        for id in reported {
            let keep = match self.store.get_job(id).await? {
                None => false,
                Some(detail) => {
                    let current = detail.attempts.last();
                    detail.job.status != JobStatus::Canceling
                        && is_held(detail.job.status)
                        && current.is_some_and(|a| a.agent_id == agent.id)
                }
            };
            if !keep {
                cancel_job_ids.push(id);
            }
        }
        Ok(HeartbeatOutcome {
            action: Self::action_for(agent.state),
            agent,
            cancel_job_ids,
        })
    }

    /// Waits up to `wait` (capped by the settings) for a job the agent may run and
    /// claims it; `None` if none came. Returns the claim and the job token.
    ///
    /// # Errors
    /// Store failures.
    pub async fn claim(
        &self,
        agent: &Agent,
        wait: Duration,
        request_id: Option<String>,
    ) -> ServiceResult<Option<(Claim, Secret)>> {
        let deadline = tokio::time::Instant::now() + wait.min(self.settings.claim_wait_max);
        let mut work = self.work.subscribe();
        self.reap_if_due().await;
        let caller = Caller::agent(agent, request_id);
        loop {
            // Mark the current value seen *before* trying, so a job submitted while
            // the claim runs wakes the wait below instead of slipping past it.
            work.borrow_and_update();
            let now = OffsetDateTime::now_utc();
            let token = IssuedToken::new(TokenKind::Job);
            let request = ClaimRequest {
                agent: agent.clone(),
                job_token: token.hash,
                lease_expires_at: now + self.settings.lease,
            };
            // A template: the store sets the job claimed and its attempt.
            let audit = caller.event(AuditAction::JobClaimed, "", None);
            if let Some(claim) = self.store.claim_job(&request, now, &audit).await? {
                return Ok(Some((claim, token.plaintext)));
            }
            if self.is_closing() {
                return Ok(None);
            }
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, work.changed()) => match changed {
                    Ok(Ok(())) => {}
                    // The wait ran out (or the sender is gone, which it never is
                    // while the service lives).
                    Ok(Err(_)) | Err(_) => return Ok(None),
                },
                () = self.closed() => return Ok(None),
            }
        }
    }

    /// Runs one reaper pass if a claim has not done so within the settings'
    /// interval. Failures are logged: a claim must not fail because cleanup did.
    async fn reap_if_due(&self) {
        let due = {
            let mut last = self
                .last_reap
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = last.is_none_or(|at| at.elapsed() >= self.settings.reap_on_claim_every);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due && let Err(err) = self.reap().await {
            tracing::warn!(error = %err, "the reaper pass run by a claim failed");
        }
    }

    /// One reaper pass (see [`crate::reaper`]), waking claims if it re-queued work.
    ///
    /// # Errors
    /// Store failures.
    pub async fn reap(&self) -> ServiceResult<ReapReport> {
        let report = reaper::reap_once(
            self.store.as_ref(),
            self.settings.queue_ttl,
            OffsetDateTime::now_utc(),
        )
        .await?;
        if report.requeued > 0 {
            self.work_arrived();
        }
        if report.ended() > 0 {
            self.job_changed();
        }
        if report.ended() > 0 {
            self.log_grew();
        }
        Ok(report)
    }

    /// Checks a job token presented for `job`.
    ///
    /// # Errors
    /// [`JobTokenError::Unauthorized`] unless it is the token of one of the job's
    /// attempts and unexpired; [`JobTokenError::NoSuchJob`]; store failures.
    pub async fn authenticate_job(
        &self,
        job: JobId,
        token: &str,
    ) -> Result<HeldJob, JobTokenError> {
        if !token.starts_with(TokenKind::Job.prefix()) {
            return Err(JobTokenError::Unauthorized);
        }
        let detail = self
            .store
            .get_job(job)
            .await
            .map_err(ServiceError::from)?
            .ok_or(JobTokenError::NoSuchJob)?;
        let hash = TokenHash::of(token);
        let attempt = detail
            .attempts
            .iter()
            .find(|a| a.job_token_hash.matches(&hash))
            .ok_or(JobTokenError::Unauthorized)?;
        if OffsetDateTime::now_utc()
            >= attempt.job_token_expires_at(detail.job.spec.timeout_seconds)
        {
            return Err(JobTokenError::Unauthorized);
        }
        let attempt = attempt.number;
        Ok(HeldJob { detail, attempt })
    }

    /// The agent started the script.
    ///
    /// # Errors
    /// [`Conflict::NotHeld`] if the attempt is no longer the agent's; store failures.
    pub async fn start(&self, held: &HeldJob, agent: Option<&Agent>) -> ServiceResult<Lease> {
        let now = OffsetDateTime::now_utc();
        let expires_at = now + self.settings.lease;
        let caller = agent.map_or_else(Caller::system, |a| Caller::agent(a, None));
        // Written by the store only with a `claimed → running` move.
        let audit = caller.event(
            AuditAction::JobStarted,
            held.detail.job.id,
            Some(format!("attempt {}", held.attempt)),
        );
        let job = self
            .store
            .start_attempt(held.detail.job.id, held.attempt, expires_at, now, &audit)
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        Ok(Lease {
            expires_at,
            cancel: job.status == JobStatus::Canceling,
        })
    }

    /// Extends the attempt's lease; says whether to cancel.
    ///
    /// # Errors
    /// [`Conflict::NotHeld`] if the attempt is no longer the agent's; store failures.
    pub async fn renew(&self, held: &HeldJob) -> ServiceResult<Lease> {
        let now = OffsetDateTime::now_utc();
        let expires_at = now + self.settings.lease;
        let job = self
            .store
            .renew_lease(held.detail.job.id, held.attempt, expires_at, now)
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        Ok(Lease {
            expires_at,
            cancel: job.status == JobStatus::Canceling,
        })
    }

    /// [`Service::renew`], then, unless the job is already being canceled, waits up
    /// to `wait` (at most the renewal interval, and not at all when the settings
    /// say leases do not wait) for it to be canceled or taken away: a lease call is
    /// then a long poll, and a cancel reaches even a job that prints nothing at
    /// once, instead of at its next renewal. The agent calls again as soon as one
    /// returns, so the lease is renewed as often as before.
    ///
    /// A lease extended a moment ago ([`Service::fresh_lease`]) is not extended
    /// again: the agent's first lease call comes a second after `start`, to begin
    /// the long poll, not because the lease needs it, and for a short job that
    /// renewal would be a read and a write for nothing.
    ///
    /// # Errors
    /// As [`Service::renew`]; [`Conflict::NotHeld`] if the job was taken away
    /// while waiting.
    pub async fn renew_waiting(&self, held: &HeldJob, wait: Duration) -> ServiceResult<Lease> {
        let mut changes = self.job_changed.subscribe();
        changes.borrow_and_update();
        let lease = match self.fresh_lease(held, OffsetDateTime::now_utc()) {
            Some(lease) => lease,
            None => self.renew(held).await?,
        };
        let cap = if self.settings.lease_waits {
            Duration::from_secs(u64::from(self.timings().lease_renew_interval_seconds))
        } else {
            Duration::ZERO
        };
        let wait = wait.min(cap);
        if lease.cancel || wait.is_zero() {
            return Ok(lease);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                changed = tokio::time::timeout_at(deadline, changes.changed()) => match changed {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return Ok(lease),
                },
                () = self.closed() => return Ok(lease),
            }
            changes.borrow_and_update();
            let detail = self
                .store
                .get_job(held.detail.job.id)
                .await?
                .ok_or(ServiceError::NotFound("job"))?;
            let current = detail.attempts.last().map(|a| a.number);
            if current != Some(held.attempt) || !is_held(detail.job.status) {
                return Err(ServiceError::Conflict(Conflict::NotHeld));
            }
            if detail.job.status == JobStatus::Canceling {
                return Ok(Lease {
                    cancel: true,
                    ..lease
                });
            }
        }
    }

    /// The lease of `held` as authenticated, if it is held and was extended within
    /// the last quarter of the renewal interval (or of the lease, if shorter), so
    /// that extending it again would move it by almost nothing. The job was read
    /// to authenticate this very call, so its status (a cancel) is as fresh as a
    /// renewal's would be.
    fn fresh_lease(&self, held: &HeldJob, now: OffsetDateTime) -> Option<Lease> {
        let attempt = held.detail.attempts.last()?;
        let status = held.detail.job.status;
        if attempt.number != held.attempt || !is_held(status) {
            return None;
        }
        let expires_at = attempt.lease_expires_at?;
        let interval =
            time::Duration::seconds(i64::from(self.timings().lease_renew_interval_seconds));
        let recent = interval.min(self.settings.lease) / 4;
        (expires_at - now >= self.settings.lease - recent).then_some(Lease {
            expires_at,
            cancel: status == JobStatus::Canceling,
        })
    }

    /// Appends a chunk of the attempt's log.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a chunk over the size limit;
    /// [`Conflict::NotHeld`] for an attempt that has ended;
    /// [`Conflict::LogOffset`] for a gap; [`Conflict::LogFull`]; store failures.
    pub async fn append_log(&self, held: &HeldJob, chunk: LogChunk) -> ServiceResult<LogAppend> {
        if chunk.data.len() > CHUNK_MAX_BYTES {
            return Err(FieldError::new(
                "body",
                format!("a log chunk is at most {CHUNK_MAX_BYTES} bytes"),
            )
            .into());
        }
        // An ended attempt's log is final: the finish checked it was whole.
        if current_attempt(&held.detail, held.attempt)?
            .status
            .is_terminal()
        {
            return Err(ServiceError::Conflict(Conflict::NotHeld));
        }
        let appended = self
            .logs
            .append_log(held.detail.job.id, held.attempt, &chunk)
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        if matches!(appended, LogAppend::Written { .. }) {
            self.log_grew();
        }
        Ok(appended)
    }

    /// Ends the attempt with the agent's result, once the server has the whole log.
    ///
    /// # Errors
    /// [`ServiceError::LogMismatch`] if the server has more bytes than reported, or
    /// other bytes; [`Conflict::NotHeld`]; an illegal transition (e.g. `canceled`
    /// for a job nobody canceled); store failures.
    pub async fn finish(
        &self,
        held: &HeldJob,
        agent: Option<&Agent>,
        report: FinishRequest,
    ) -> ServiceResult<Finish> {
        let result = match report.result {
            AttemptResult::Succeeded => JobStatus::Succeeded,
            AttemptResult::Failed => JobStatus::Failed,
            AttemptResult::Canceled => JobStatus::Canceled,
            AttemptResult::TimedOut => JobStatus::TimedOut,
        };
        let attempt = current_attempt(&held.detail, held.attempt)?;
        // A finish retried after its answer was lost: the attempt already ended
        // with this very result.
        if attempt.status == result && attempt.number == held.attempt {
            return Ok(Finish::Done(held.detail.job.status));
        }
        let summary = self
            .logs
            .log_summary(held.detail.job.id, held.attempt)
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        if summary.size < report.log_bytes {
            return Ok(Finish::Pending {
                next_offset: summary.size,
            });
        }
        if summary.size != report.log_bytes || summary.crc32 != report.log_crc32 {
            return Err(ServiceError::LogMismatch {
                server_bytes: summary.size,
                server_crc32: summary.crc32,
                agent_bytes: report.log_bytes,
                agent_crc32: report.log_crc32,
            });
        }
        let caller = agent.map_or_else(Caller::system, |a| Caller::agent(a, None));
        let audit = caller.event(
            AuditAction::JobFinished,
            held.detail.job.id,
            Some(format!(
                "attempt {}: {result}{}",
                held.attempt,
                report
                    .exit_code
                    .map(|c| format!(", exit code {c}"))
                    .unwrap_or_default()
            )),
        );
        let job = self
            .store
            .end_attempt(
                held.detail.job.id,
                held.attempt,
                AttemptEnd::Reported(result),
                report.exit_code,
                OffsetDateTime::now_utc(),
                &audit,
            )
            .await
            .map_err(ServiceError::or_not_found("job"))?;
        self.log_grew();
        Ok(Finish::Done(job.status))
    }

    /// Ends, as abandoned, every attempt `agent` holds (it is leaving or was
    /// deleted), so they are retried now rather than when their leases run out.
    async fn abandon_held(&self, agent: AgentId, caller: &Caller, why: &str) -> ServiceResult<u32> {
        let mut ended = 0;
        for held in self.store.held_by(agent).await? {
            // Written with the end, so it says why, not what the end made of it.
            let audit = caller.event(
                AuditAction::JobReaped,
                held.job,
                Some(format!("attempt {}: {why}", held.attempt)),
            );
            match self
                .store
                .end_attempt(
                    held.job,
                    held.attempt,
                    AttemptEnd::Abandoned,
                    None,
                    OffsetDateTime::now_utc(),
                    &audit,
                )
                .await
            {
                Ok(_) => {
                    ended += 1;
                }
                // It ended on its own meanwhile.
                Err(StoreError::Conflict(Conflict::NotHeld) | StoreError::IllegalTransition(_)) => {
                }
                Err(err) => return Err(err.into()),
            }
        }
        if ended > 0 {
            self.work_arrived();
            self.job_changed();
            self.log_grew();
        }
        Ok(ended)
    }

    /// The agent says it is leaving: jobs it still holds are abandoned (and so
    /// retried at once).
    ///
    /// # Errors
    /// Store failures.
    pub async fn disconnect(&self, agent: &Agent, request_id: Option<String>) -> ServiceResult<()> {
        let caller = Caller::agent(agent, request_id);
        let ended = self
            .abandon_held(agent.id, &caller, "its agent disconnected")
            .await?;
        caller
            .record(
                self.store.as_ref(),
                AuditAction::AgentDisconnected,
                agent.id,
                (ended > 0).then(|| format!("{ended} held jobs abandoned")),
            )
            .await;
        Ok(())
    }

    /// Replaces the agent's token; the old one stops working at once.
    ///
    /// # Errors
    /// `NotFound("agent")`; store failures.
    pub async fn rotate_agent_token(
        &self,
        agent: &Agent,
        request_id: Option<String>,
    ) -> ServiceResult<Secret> {
        let issued = IssuedToken::new(TokenKind::Agent);
        let audit =
            Caller::agent(agent, request_id).event(AuditAction::AgentTokenRotated, agent.id, None);
        self.store
            .rotate_agent_token(agent.id, &issued.hash, &audit)
            .await
            .map_err(ServiceError::or_not_found("agent"))?;
        Ok(issued.plaintext)
    }

    /// An admin pauses, resumes or drains an agent.
    ///
    /// # Errors
    /// `NotFound("agent")`; store failures.
    pub async fn set_agent_state(
        &self,
        caller: &Caller,
        id: AgentId,
        state: AgentState,
    ) -> ServiceResult<Agent> {
        let audit = caller.event(
            AuditAction::AgentStateChanged,
            id,
            Some(state.as_str().to_owned()),
        );
        let agent = self
            .store
            .set_agent_state(id, state, &audit)
            .await
            .map_err(ServiceError::or_not_found("agent"))?;
        Ok(agent)
    }

    /// An admin deletes an agent: its token stops working at once and the jobs it
    /// held are abandoned (lost, and retried while retries remain). The
    /// deletion's event is written with it; each job it abandons then has its
    /// own `job.reaped` event, naming the deletion as the reason.
    ///
    /// # Errors
    /// `NotFound("agent")`; store failures.
    pub async fn delete_agent(&self, caller: &Caller, id: AgentId) -> ServiceResult<()> {
        let audit = caller.event(AuditAction::AgentDeleted, id, None);
        self.store
            .delete_agent(id, &audit)
            .await
            .map_err(ServiceError::or_not_found("agent"))?;
        self.abandon_held(id, caller, "its agent was deleted")
            .await?;
        Ok(())
    }
}

/// The attempt numbered `number` of `detail`, which must be its latest.
fn current_attempt(detail: &JobDetail, number: u32) -> ServiceResult<&Attempt> {
    let latest = detail
        .attempts
        .last()
        .ok_or(ServiceError::Conflict(Conflict::NotHeld))?;
    if latest.number == number {
        Ok(latest)
    } else {
        Err(ServiceError::Conflict(Conflict::NotHeld))
    }
}
