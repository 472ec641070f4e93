//! Jittered exponential backoff for calls that failed in a way worth retrying.
//!
//! "Full jitter" (a uniform delay between zero and a ceiling that doubles from
//! 0.5 s to 30 s): when a server restarts, every agent that lost its connection
//! retries at a different moment instead of all at once, which is what a fixed or
//! "equal jitter" schedule would do. A server's `Retry-After` overrides the delay
//! (see [`parse_retry_after`]), but the attempt still counts, so the next delay
//! without one keeps growing.

use std::time::Duration;

use rand::Rng as _;

/// The first ceiling.
const BASE: Duration = Duration::from_millis(500);
/// The largest ceiling: a server that comes back is noticed within 30 s.
const MAX: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured as given; a larger one (a misconfigured
/// proxy) is cut to this, so an agent never sleeps for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// One retry sequence. Make a new one (or [`Backoff::reset`]) after a success.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(crate) const fn new() -> Self {
        Self { attempt: 0 }
    }

    /// The largest delay the next [`Backoff::next_delay`] can return:
    /// `min(30 s, 0.5 s × 2^attempt)`.
    pub(crate) fn ceiling(&self) -> Duration {
        // 2^6 × 0.5 s = 32 s is past the cap, so larger shifts never matter (and
        // cannot overflow).
        let factor = 1u32 << self.attempt.min(6);
        (BASE * factor).min(MAX)
    }

    /// A uniformly random delay in `[0, ceiling]`; the ceiling then doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        rand::thread_rng().gen_range(Duration::ZERO..=ceiling)
    }

    /// Counts an attempt whose delay came from elsewhere (a `Retry-After`).
    pub(crate) fn skip(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
    }

    /// How many delays were handed out.
    pub(crate) const fn attempts(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A `Retry-After` header in its delay-seconds form, capped at five minutes. The
/// HTTP-date form is not used by Runway (it sends seconds) and is ignored, which
/// falls back to the normal backoff.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_from_half_a_second_and_stops_at_thirty_seconds() {
        let mut backoff = Backoff::new();
        let mut ceilings = Vec::new();
        for _ in 0..9 {
            ceilings.push(backoff.ceiling().as_millis());
            backoff.next_delay();
        }
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn every_delay_stays_within_its_ceiling_even_after_many_attempts() {
        let mut backoff = Backoff::new();
        for _ in 0..10_000 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay();
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            assert!(delay <= MAX);
        }
        assert_eq!(backoff.attempts(), 10_000);
    }

    #[test]
    fn delays_are_jittered_not_fixed() {
        let delays: std::collections::BTreeSet<Duration> = (0..50)
            .map(|_| {
                let mut b = Backoff { attempt: 10 };
                b.next_delay()
            })
            .collect();
        // 50 draws from [0, 30 s] with nanosecond resolution: a fixed schedule would
        // give one value.
        assert!(delays.len() > 40, "{} distinct delays", delays.len());
    }

    #[test]
    fn reset_starts_again_from_half_a_second() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(500));
    }

    #[test]
    fn retry_after_seconds_are_honoured_and_capped_at_five_minutes() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400"), Some(Duration::from_secs(300)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
