//! The log lines' timestamp, written without `core::fmt`.
//!
//! Every log line starts with the UTC time to the microsecond,
//! `2026-12-02T06:30:01.123456Z`, the format of `tracing-subscriber`'s default timer
//! (`fmt::time::SystemTime`), which both the `pretty` and the `json` format keep.
//! That timer renders its seven numbers through `write!` with padding (`{:02}`,
//! `{:06}`), one formatting call per number, on every event; at `RUNWAY_LOG=info`
//! that is one per request. [`UtcMicros`] writes the same 27 bytes into a stack
//! buffer digit by digit and hands the writer one `&str`.
//!
//! It covers the years 1970 to 9999, where the format has four year digits; for any
//! other clock reading it defers to the default timer, so the output is that
//! timer's in every case.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{self, FormatTime};

/// Seconds from the Unix epoch to 10000-01-01T00:00:00Z, where a fifth year digit
/// would be needed.
const YEAR_10000: u64 = 253_402_300_800;

/// The length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
const LEN: usize = 27;

/// A [`FormatTime`] that prints what `fmt::time::SystemTime` prints, faster.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtcMicros;

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) if since.as_secs() < YEAR_10000 => {
                let buf = render(since.as_secs(), since.subsec_micros());
                // Only ASCII digits and separators were written.
                w.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
            _ => time::SystemTime.format_time(w),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` for `secs` after the epoch (before year 10000) and
/// `micros` past that second.
fn render(secs: u64, micros: u32) -> [u8; LEN] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut buf[0..4], u64::from(year));
    digits(&mut buf[5..7], u64::from(month));
    digits(&mut buf[8..10], u64::from(day));
    digits(&mut buf[11..13], in_day / 3600);
    digits(&mut buf[14..16], in_day / 60 % 60);
    digits(&mut buf[17..19], in_day % 60);
    digits(&mut buf[20..26], u64::from(micros));
    buf
}

/// Writes the last `out.len()` decimal digits of `n` into `out`, zero-padded.
fn digits(out: &mut [u8], mut n: u64) {
    for slot in out.iter_mut().rev() {
        // `n % 10` is below 10, so the cast cannot truncate.
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The proleptic Gregorian date `days` days after 1970-01-01, as (year, month, day).
///
/// Counts from 0000-03-01 so that the leap day ends each 4-, 100- and 400-year
/// cycle: a 400-year era has 146,097 days, and within a year starting in March the
/// month follows from the day of the year by `(5 * doy + 2) / 153`.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March year, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    // Below year 10000 every part fits a u32 with room to spare.
    let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    (narrow(year), narrow(month), narrow(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64, micros: u32) -> String {
        String::from_utf8(render(secs, micros).to_vec()).unwrap()
    }

    #[test]
    fn the_epoch_and_known_instants_render_as_rfc_3339_with_microseconds() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(text(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(text(1_709_251_199, 120_000), "2024-02-29T23:59:59.120000Z");
        assert_eq!(text(1_735_689_600, 1), "2025-01-01T00:00:00.000001Z");
        assert_eq!(text(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(text(YEAR_10000 - 1, 999_999), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn every_day_for_five_centuries_matches_a_day_by_day_count() {
        // Walk the calendar one day at a time from 1970 and compare.
        let (mut y, mut m, mut d) = (1970_u32, 1_u32, 1_u32);
        for days in 0..(530 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    /// The default timer's output for "now", and ours, taken in the same second.
    fn both_now() -> (String, String) {
        loop {
            let mut theirs = String::new();
            let mut ours = String::new();
            time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            UtcMicros.format_time(&mut Writer::new(&mut ours)).unwrap();
            if theirs[..19] == ours[..19] {
                return (theirs, ours);
            }
        }
    }

    #[test]
    fn the_timer_prints_what_the_default_timer_prints() {
        let (theirs, ours) = both_now();
        assert_eq!(ours.len(), theirs.len(), "{ours} vs {theirs}");
        assert_eq!(ours.len(), LEN);
        assert_eq!(ours[..20], theirs[..20], "{ours} vs {theirs}");
        assert!(ours[20..26].bytes().all(|b| b.is_ascii_digit()), "{ours}");
        assert!(ours.ends_with('Z'), "{ours}");
    }
}
