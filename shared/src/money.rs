//! US-dollar amounts as Herald stores them: whole micro-dollars (`i64`), exact, instead of
//! binary floating point; the API takes and shows dollars with at most six decimals.

const MICRO: f64 = 1_000_000.0;

/// `usd` in micro-dollars, refusing negative, non-finite, over-`max` or over-precise amounts.
#[expect(
    clippy::cast_possible_truncation,
    reason = "the amount is checked to be within 0..=max (at most 10^12 dollars) first"
)]
pub fn micro_usd(usd: f64, max: f64) -> Result<i64, String> {
    if !usd.is_finite() || !(0.0..=max).contains(&usd) {
        return Err(format!("must be from 0 to {max} US dollars"));
    }
    let micro = (usd * MICRO).round();
    if (micro / MICRO - usd).abs() > 1e-9 {
        return Err("must have at most six decimals".to_owned());
    }
    Ok(micro as i64)
}

/// Micro-dollars as dollars.
#[expect(
    clippy::cast_precision_loss,
    reason = "amounts Herald stores are far below 2^53 micro-dollars, exact in an f64"
)]
pub fn usd(micro: i64) -> f64 {
    micro as f64 / MICRO
}

/// What `tokens` cost at `microusd_per_mtok` (micro-dollars per million tokens), in
/// micro-dollars, rounded up: a call is never recorded as cheaper than it was.
pub fn cost_of_tokens(tokens: i64, microusd_per_mtok: i64) -> i64 {
    let micro = i128::from(tokens.max(0)) * i128::from(microusd_per_mtok.max(0));
    i64::try_from((micro + 999_999) / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{cost_of_tokens, micro_usd, usd};

    #[test]
    fn token_costs_round_up_to_the_micro_dollar() {
        // 1,000 tokens at $2.50 per million: $0.0025
        assert_eq!(cost_of_tokens(1_000, 2_500_000), 2_500);
        assert_eq!(cost_of_tokens(1, 150_000), 1);
        assert_eq!(cost_of_tokens(0, 150_000), 0);
        assert_eq!(cost_of_tokens(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn amounts_round_trip_exactly_and_bad_ones_are_refused() {
        assert_eq!(micro_usd(0.15, 10.0), Ok(150_000));
        assert_eq!(usd(150_000), 0.15);
        assert_eq!(micro_usd(2.5, 10.0), Ok(2_500_000));
        assert!(micro_usd(0.123_456_7, 10.0).is_err());
        assert!(micro_usd(-0.01, 10.0).is_err());
        assert!(micro_usd(10.01, 10.0).is_err());
        assert!(micro_usd(f64::NAN, 10.0).is_err());
    }
}
