//! Reading providers' HTTP answers: how long they ask to be left alone, and error text that
//! says what happened. Shared by every REST provider client.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Longest wait a provider may ask for that is honoured: a bogus answer must not park a job
/// for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` in seconds (the form Twilio and OpenAI use), capped at [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // capped before it becomes a Duration: a huge value would not fit one
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// A header holding a duration in Go's `time.Duration` form, as OpenAI's
/// `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` do (`1s`, `6m0s`, `20ms`,
/// `1h2m3.5s`), capped at [`MAX_RETRY_AFTER`]. Written by hand: the form is Go's own, and the
/// duration crates read other spellings (with spaces, or without `ms`).
pub fn go_duration(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds_per_unit;
    }
    total
        .is_finite()
        .then(|| Duration::from_secs_f64(total.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The start of a body that is not the expected JSON, for an error message.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    text.chars().take(200).collect()
}

/// An error and its causes on one line (reqwest's own text omits "connection refused").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("999999"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        // far beyond what a Duration holds: capped, not a panic
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1e30"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn openai_reset_headers_are_read_as_go_durations() {
        let read = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-ratelimit-reset-tokens", HeaderValue::from_static(value));
            go_duration(&headers, "x-ratelimit-reset-tokens")
        };
        assert_eq!(read("1s"), Some(Duration::from_secs(1)));
        assert_eq!(read("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(read("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(read("2m3.5s"), Some(Duration::from_secs_f64(123.5)));
        assert_eq!(read("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(read("99h"), Some(MAX_RETRY_AFTER));
        assert_eq!(read("99999999999999999999999s"), Some(MAX_RETRY_AFTER));
        assert_eq!(read("soon"), None);
        assert_eq!(read("5"), None);
        assert_eq!(read("5x"), None);
        assert_eq!(
            go_duration(&HeaderMap::new(), "x-ratelimit-reset-tokens"),
            None
        );
    }
}
