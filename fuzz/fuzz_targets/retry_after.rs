//! `Retry-After` comes from the server: any value, at any clock time, must parse or be refused
//! without a panic, and the wait the retry policy draws from it must stay within its cap.
//!
//! Input layout: 8 bytes of seconds since the Unix epoch (little-endian `i64`, negative for times
//! before it), 4 bytes of nanoseconds, 4 bytes of attempt number (both little-endian `u32`), then
//! the header value (lossily UTF-8). Shorter inputs are read as the value alone, at the epoch.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rejudge::judge::{RetryPolicy, parse_retry_after};
use std::time::{Duration, SystemTime};

const HEADER: usize = 16;

/// The clock reading the header describes. `Duration::new` cannot overflow with fewer than a
/// billion nanoseconds, and `checked_*` turns an unrepresentable time into the epoch, so building
/// the clock never panics by itself.
fn clock(seconds: i64, nanos: u32) -> SystemTime {
    let offset = Duration::new(seconds.unsigned_abs(), nanos % 1_000_000_000);
    let now = if seconds >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    };
    now.unwrap_or(SystemTime::UNIX_EPOCH)
}

fuzz_target!(|data: &[u8]| {
    let (now, attempt, value) = match data.split_first_chunk::<HEADER>() {
        Some((header, value)) => {
            let (seconds, rest) = header.split_first_chunk::<8>().expect("16 bytes hold 8");
            let (nanos, attempt) = rest.split_first_chunk::<4>().expect("8 bytes hold 4");
            let attempt: [u8; 4] = attempt.try_into().expect("4 bytes remain");
            (
                clock(i64::from_le_bytes(*seconds), u32::from_le_bytes(*nanos)),
                u32::from_le_bytes(attempt),
                value,
            )
        }
        None => (SystemTime::UNIX_EPOCH, 1, data),
    };
    let value = String::from_utf8_lossy(value);
    let parsed = parse_retry_after(&value, now);
    let policy = RetryPolicy::default();
    let wait = policy.delay(attempt, parsed);
    if parsed.is_some() {
        assert!(wait <= policy.max_retry_after, "{wait:?} for {value:?}");
    } else {
        assert!(wait <= policy.max_delay, "{wait:?} for {value:?}");
    }
});
