//! Abuse limits: how many sign-ins, agent registrations and token creations one
//! account, one address or one token may attempt, and the backoff after that.
//!
//! ## What is counted, and where
//!
//! Counters live in the store ([`LimitStore`]), never in memory: on Lambda every
//! instance serves one request at a time and shares nothing with the others, so
//! an in-process counter would never get past one. Each counter is keyed by a
//! scope and the SHA-256 of what it limits ([`LimitKey`]): a username may be a
//! password typed into the wrong field, and a registration token is a credential,
//! so no value is stored in clear. Usernames are trimmed and lower-cased first,
//! so `Admin ` and `admin` share a counter.
//!
//! | limit | key | counts | default |
//! |---|---|---|---|
//! | password sign-in, per account | `signin_account` + username | failures; a success clears it | 5 |
//! | sign-in, per address | `signin_ip` + client IP | failed password sign-ins and failed OIDC callbacks | 50 |
//! | agent registration | `register_ip` + IP, `register_token` + the token's hash | every attempt | 100 each |
//! | token creation | `token_user` + user id, `token_ip` + IP | every attempt | 30 each |
//!
//! A request whose client address is unknown (served without `ConnectInfo`) is
//! limited by its other key only.
//!
//! ## The backoff
//!
//! A counter is forgotten [`LimitSettings::window`] (default 15 min) after the
//! latest attempt it counted. Once it holds `max` attempts, the next one is
//! refused until `last attempt + BASE_BACKOFF × 2^(count − max)`, capped at
//! [`LimitSettings::max_backoff`] (default 15 min): 1 s after the 5th failure,
//! then 2 s, 4 s, … A refused request is not counted (it did nothing), so the
//! backoff grows only with attempts that were let through and failed again: a
//! password guesser gets about `max + log2(max_backoff)` guesses per window per
//! account, then one per `max_backoff`, while the owner who mistypes twice
//! never notices. The window must be at least the largest backoff
//! (configuration checks it), so no lockout outlives its counter.
//!
//! The refusal is 429 `rate_limited` with `Retry-After`, the seconds until the
//! lockout ends (rounded up). A refusal is audited as `rate_limit.refused`, once
//! per lockout: the store's [`LimitStore::note_refusal`] lets exactly one of the
//! refusals at one count report it, however many instances refuse at once, so a
//! flood cannot flood the audit log. Its detail names the limit, the backoff and
//! the address, never the username (see above).
//!
//! ## Cost, and the race it leaves
//!
//! Admission is one strongly consistent read per key (two, concurrently); a
//! counted attempt is one atomic write per key. A successful sign-in writes only
//! to clear an account counter that exists, so in the common case it writes
//! nothing more than before. Because admission reads and counting writes, the
//! attempts in flight at the moment a limit is crossed all get through (on one
//! instance at most the argon2 permits; on Lambda one per instance); each of them
//! is counted, so the lockout that follows is longer by as much.
//!
//! ## When the store fails: open, on an outage only
//!
//! If the counter store is unavailable (`StoreError::Unavailable`), the limiter
//! lets the request through and logs a warning. The same outage makes sign-in,
//! registration and token creation themselves fail with 503 (they need the same
//! store), so failing closed would add nothing but a second reason to refuse,
//! while failing open keeps a request that does not need the store at that
//! moment (a throttled counters table) working. Any other store error is a bug or
//! corrupt data and fails the request (500), as everywhere.

use std::sync::Arc;
use std::time::Duration;

use runway_core::OffsetDateTime;
use runway_core::audit::{Actor, AuditAction, AuditEvent};
use runway_core::id::UserId;
use runway_core::limit::{Attempts, LimitKey};
use runway_core::secret::TokenHash;
use runway_core::store::{Store, StoreError};

use crate::error::{ServiceError, ServiceResult};

/// The first lockout, after `max` attempts; each further attempt doubles it.
pub const BASE_BACKOFF: Duration = Duration::from_secs(1);

/// The limits the server chooses (`RUNWAY_SIGNIN_MAX_FAILURES`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// A counter is forgotten this long after its latest attempt.
    pub window: Duration,
    /// The longest a lockout lasts.
    pub max_backoff: Duration,
    /// Failed password sign-ins per account before the backoff starts.
    pub sign_in_max_failures: u32,
    /// Failed sign-ins (password or OIDC) per client address before the backoff.
    pub sign_in_max_failures_per_ip: u32,
    /// Agent registrations per client address, and per registration token.
    pub register_max_attempts: u32,
    /// Token creations per user, and per client address.
    pub token_create_max_attempts: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(900),
            max_backoff: Duration::from_secs(900),
            sign_in_max_failures: 5,
            sign_in_max_failures_per_ip: 50,
            register_max_attempts: 100,
            token_create_max_attempts: 30,
        }
    }
}

/// One counter to check: its key, its limit, and what it limits (for messages).
#[derive(Debug, Clone)]
struct Rule {
    key: LimitKey,
    max: u32,
    what: &'static str,
}

/// What a sign-in's admission saw, for its outcome.
#[derive(Debug, Clone)]
#[must_use = "hand it to `sign_in_failed` or `sign_in_succeeded`"]
pub struct SignInAdmission {
    account: Rule,
    ip: Option<Rule>,
    /// Whether the account had a live counter (a success then clears it).
    account_counted: bool,
    ip_text: Option<String>,
}

/// The abuse limits, on one store. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    store: Arc<dyn Store>,
    settings: LimitSettings,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How long `attempts` locks its key out for, under a limit of `max`.
#[must_use]
pub fn backoff(count: u32, max: u32, cap: Duration) -> Option<Duration> {
    let over = count.checked_sub(max)?;
    let factor = 1_u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
    Some(BASE_BACKOFF.saturating_mul(factor).min(cap))
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` says.
fn whole_seconds_up(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// A counter read that fails open on an outage (see the module docs).
fn open_on_outage<T>(result: Result<T, StoreError>, fallback: T) -> ServiceResult<T> {
    match result {
        Ok(value) => Ok(value),
        Err(err @ StoreError::Unavailable { .. }) => {
            tracing::warn!(error = %err, "abuse-limit counters unavailable; letting the request through");
            Ok(fallback)
        }
        Err(err) => Err(err.into()),
    }
}

fn normalised_username(username: &str) -> String {
    username.trim().to_lowercase()
}

impl Limits {
    /// The limits in `settings`, counted in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, settings: LimitSettings) -> Self {
        Self { store, settings }
    }

    /// The settings.
    #[must_use]
    pub const fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    fn ip_rule(
        scope: &'static str,
        ip: Option<&str>,
        max: u32,
        what: &'static str,
    ) -> Option<Rule> {
        ip.filter(|ip| !ip.is_empty()).map(|ip| Rule {
            key: LimitKey::new(scope, ip),
            max,
            what,
        })
    }

    async fn read(
        &self,
        rule: Option<&Rule>,
        now: OffsetDateTime,
    ) -> ServiceResult<Option<Attempts>> {
        match rule {
            None => Ok(None),
            Some(rule) => open_on_outage(self.store.attempts(&rule.key, now).await, None),
        }
    }

    /// Reads both counters (concurrently) and refuses if either is locked out.
    /// Returns what was read.
    async fn admit(
        &self,
        first: &Rule,
        second: Option<&Rule>,
        ip: Option<&str>,
        request_id: Option<&str>,
        now: OffsetDateTime,
    ) -> ServiceResult<(Option<Attempts>, Option<Attempts>)> {
        let (a, b) = tokio::join!(self.read(Some(first), now), self.read(second, now));
        let (a, b) = (a?, b?);
        let mut refusal: Option<(&Rule, Attempts, Duration, OffsetDateTime)> = None;
        for (rule, attempts) in [(Some(first), a), (second, b)] {
            let (Some(rule), Some(attempts)) = (rule, attempts) else {
                continue;
            };
            let Some(lockout) = backoff(attempts.count, rule.max, self.settings.max_backoff) else {
                continue;
            };
            let until = attempts.last_at + lockout;
            if until > now && refusal.is_none_or(|(_, _, _, u)| until > u) {
                refusal = Some((rule, attempts, lockout, until));
            }
        }
        let Some((rule, attempts, lockout, until)) = refusal else {
            return Ok((a, b));
        };
        let retry_after = whole_seconds_up((until - now).try_into().unwrap_or(BASE_BACKOFF));
        self.report(rule, attempts, lockout, ip, request_id, now)
            .await;
        Err(ServiceError::RateLimited {
            what: rule.what,
            retry_after,
        })
    }

    /// Audits a lockout, if this refusal is the first of it.
    async fn report(
        &self,
        rule: &Rule,
        attempts: Attempts,
        lockout: Duration,
        ip: Option<&str>,
        request_id: Option<&str>,
        now: OffsetDateTime,
    ) {
        match self
            .store
            .note_refusal(&rule.key, attempts.count, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "could not note an abuse-limit refusal; not audited");
                return;
            }
        }
        let mut event = AuditEvent::new(Actor::System, AuditAction::RateLimitRefused, None, now);
        if let Some(id) = request_id.filter(|id| !id.is_empty()) {
            event = event.with_request_id(id.to_owned());
        }
        let from = ip.unwrap_or("an unknown address");
        crate::audit::append(
            self.store.as_ref(),
            event,
            Some(format!(
                "{}: {} counted, locked out for {} s, from {from}",
                rule.what,
                attempts.count,
                lockout.as_secs()
            )),
        )
        .await;
    }

    /// Counts one attempt under each rule; failures are logged, never returned
    /// (the request itself already happened).
    async fn count(&self, rules: [Option<&Rule>; 2], now: OffsetDateTime) {
        let window = self.settings.window;
        let record = |rule: Option<&Rule>| {
            let key = rule.map(|r| r.key.clone());
            async move {
                if let Some(key) = key
                    && let Err(err) = self.store.record_attempt(&key, now, window).await
                {
                    tracing::warn!(error = %err, limit.key = ?key, "could not count an attempt against an abuse limit");
                }
            }
        };
        tokio::join!(record(rules[0]), record(rules[1]));
    }

    /// Admits a password sign-in as `username` from `ip`, or refuses it with
    /// [`ServiceError::RateLimited`]. Hand what it returns to
    /// [`Self::sign_in_failed`] or [`Self::sign_in_succeeded`].
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; store failures other than an outage.
    pub async fn admit_sign_in(
        &self,
        username: &str,
        ip: Option<&str>,
        request_id: Option<&str>,
    ) -> ServiceResult<SignInAdmission> {
        let now = OffsetDateTime::now_utc();
        let account = Rule {
            key: LimitKey::new("signin_account", &normalised_username(username)),
            max: self.settings.sign_in_max_failures,
            what: "failed sign-ins for this account",
        };
        let ip_rule = self.sign_in_ip_rule(ip);
        let (seen, _) = self
            .admit(&account, ip_rule.as_ref(), ip, request_id, now)
            .await?;
        Ok(SignInAdmission {
            account,
            ip: ip_rule,
            account_counted: seen.is_some(),
            ip_text: ip.map(str::to_owned),
        })
    }

    /// Counts a refused password sign-in against its account and address.
    pub async fn sign_in_failed(&self, admission: SignInAdmission) {
        self.count(
            [Some(&admission.account), admission.ip.as_ref()],
            OffsetDateTime::now_utc(),
        )
        .await;
    }

    /// A successful sign-in clears its account's counter (if it had one: no
    /// write otherwise). The address's counter stays: one good account must not
    /// wipe the record of guesses at others.
    pub async fn sign_in_succeeded(&self, admission: SignInAdmission) {
        if !admission.account_counted {
            return;
        }
        if let Err(err) = self.store.clear_attempts(&admission.account.key).await {
            tracing::warn!(error = %err, from = admission.ip_text.as_deref(), "could not clear a sign-in counter");
        }
    }

    fn sign_in_ip_rule(&self, ip: Option<&str>) -> Option<Rule> {
        Self::ip_rule(
            "signin_ip",
            ip,
            self.settings.sign_in_max_failures_per_ip,
            "failed sign-ins from this address",
        )
    }

    /// Admits a sign-in that is not by password (an OIDC callback) from `ip`: only
    /// the address's counter applies. Without an address there is nothing to
    /// limit.
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; store failures other than an outage.
    pub async fn admit_sign_in_from(
        &self,
        ip: Option<&str>,
        request_id: Option<&str>,
    ) -> ServiceResult<()> {
        let Some(rule) = self.sign_in_ip_rule(ip) else {
            return Ok(());
        };
        self.admit(&rule, None, ip, request_id, OffsetDateTime::now_utc())
            .await
            .map(drop)
    }

    /// Counts a failed sign-in that is not by password against its address.
    pub async fn sign_in_failed_from(&self, ip: Option<&str>) {
        let rule = self.sign_in_ip_rule(ip);
        self.count([rule.as_ref(), None], OffsetDateTime::now_utc())
            .await;
    }

    /// Admits and counts an agent registration presenting the token whose hash is
    /// `token`, from `ip`; every attempt counts, successful or not.
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; store failures other than an outage.
    pub async fn check_registration(
        &self,
        token: &TokenHash,
        ip: Option<&str>,
        request_id: Option<&str>,
    ) -> ServiceResult<()> {
        let max = self.settings.register_max_attempts;
        let by_token = Rule {
            key: LimitKey::new("register_token", token.as_str()),
            max,
            what: "agent registrations with this token",
        };
        let by_ip = Self::ip_rule(
            "register_ip",
            ip,
            max,
            "agent registrations from this address",
        );
        self.admit_and_count(&by_token, by_ip.as_ref(), ip, request_id)
            .await
    }

    /// Admits and counts a token creation (registration tokens; personal API
    /// tokens) by `user` from `ip`; every attempt counts. Call it before creating
    /// the token.
    ///
    /// # Errors
    /// [`ServiceError::RateLimited`]; store failures other than an outage.
    pub async fn check_token_creation(
        &self,
        user: UserId,
        ip: Option<&str>,
        request_id: Option<&str>,
    ) -> ServiceResult<()> {
        let max = self.settings.token_create_max_attempts;
        let by_user = Rule {
            key: LimitKey::new("token_user", &user.to_string()),
            max,
            what: "token creations by this user",
        };
        let by_ip = Self::ip_rule("token_ip", ip, max, "token creations from this address");
        self.admit_and_count(&by_user, by_ip.as_ref(), ip, request_id)
            .await
    }

    async fn admit_and_count(
        &self,
        first: &Rule,
        second: Option<&Rule>,
        ip: Option<&str>,
        request_id: Option<&str>,
    ) -> ServiceResult<()> {
        let now = OffsetDateTime::now_utc();
        self.admit(first, second, ip, request_id, now).await?;
        self.count([Some(first), second], now).await;
        Ok(())
    }

    /// The reaper's share: deletes counters expired at `now`, at most `limit`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn purge_expired(&self, now: OffsetDateTime, limit: u32) -> ServiceResult<u64> {
        Ok(self.store.purge_expired_attempts(now, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_at_the_limit_doubles_per_attempt_and_stops_at_the_cap() {
        let cap = Duration::from_secs(900);
        assert_eq!(backoff(4, 5, cap), None);
        assert_eq!(backoff(5, 5, cap), Some(Duration::from_secs(1)));
        assert_eq!(backoff(6, 5, cap), Some(Duration::from_secs(2)));
        assert_eq!(backoff(9, 5, cap), Some(Duration::from_secs(16)));
        assert_eq!(backoff(15, 5, cap), Some(cap));
        assert_eq!(backoff(u32::MAX, 0, cap), Some(cap));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            whole_seconds_up(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(whole_seconds_up(Duration::ZERO), Duration::from_secs(1));
    }

    #[test]
    fn usernames_share_a_counter_whatever_their_case_or_surrounding_space() {
        assert_eq!(normalised_username(" Admin "), "admin");
    }
}
