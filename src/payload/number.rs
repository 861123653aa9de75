//! JSON numbers to `f64`, with Clinger's fast path for the short decimals
//! that model answers are made of (`0.1234`, `-3`, `1e-2`). The walk that
//! reads the digits also checks the RFC 8259 grammar, so the JSON scanner
//! validates a number and its reader gets the value from one pass.
//!
//! When the decimal significand `w` fits in 53 bits and the power of ten
//! `10^q` is exact in binary (|q| ≤ 22), `w × 10^q` or `w / 10^-q` is one
//! IEEE operation on exact operands, hence correctly rounded: the same
//! value any correct parser returns (W. D. Clinger, "How to Read Floating
//! Point Numbers Accurately", PLDI 1990). Everything else goes to the
//! standard library's parser. A robot answer carries 14 such numbers, and
//! the general parser spent about four times the instructions on each.

/// Powers of ten exactly representable as `f64`.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];
/// Largest significand the fast path takes: 2^53.
const MAX_EXACT_SIGNIFICAND: u64 = 1 << 53;

/// A token that breaks the RFC 8259 number grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotANumber;

/// The value of a number token, when the token is one; `None` when it is not
/// one a float parser accepts (JSON's grammar or Rust's looser one: `.5`,
/// `007`).
pub fn parse_f64(token: &[u8]) -> Option<f64> {
    match json_number(token) {
        Ok(Some(value)) => Some(value),
        _ => std::str::from_utf8(token).ok()?.parse().ok(),
    }
}

/// Checks `token` against RFC 8259 §6 (`[ minus ] int [ frac ] [ exp ]`,
/// no leading zeros) and, in the same pass, computes its value when the
/// fast path is exact. `Ok(None)`: a valid number that needs the general
/// parser ([`parse_f64`]).
pub fn json_number(token: &[u8]) -> Result<Option<f64>, NotANumber> {
    let (negative, mut rest) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let leading_zero = rest.first() == Some(&b'0');
    let mut significand: u64 = 0;
    let int_digits = take_digits(&mut rest, &mut significand);
    if int_digits == 0 || (leading_zero && int_digits > 1) {
        return Err(NotANumber);
    }
    let mut digits = int_digits;
    let mut exponent: i64 = 0;
    if let Some((b'.', tail)) = rest.split_first() {
        rest = tail;
        let fraction_digits = take_digits(&mut rest, &mut significand);
        if fraction_digits == 0 {
            return Err(NotANumber);
        }
        digits += fraction_digits;
        exponent = -i64::from(fraction_digits);
    }
    let mut exponent_fits = true;
    if let Some((b'e' | b'E', tail)) = rest.split_first() {
        rest = tail;
        let exponent_negative = match rest.split_first() {
            Some((b'-', tail)) => {
                rest = tail;
                true
            }
            Some((b'+', tail)) => {
                rest = tail;
                false
            }
            _ => false,
        };
        let mut written = 0;
        let exponent_digits = take_digits(&mut rest, &mut written);
        if exponent_digits == 0 {
            return Err(NotANumber);
        }
        // More than 9 digits could have wrapped (and negating or adding the
        // wrapped value could overflow); exponents that long are far outside
        // the fast path anyway.
        exponent_fits = exponent_digits <= 9;
        if exponent_fits {
            let written = written as i64;
            exponent += if exponent_negative { -written } else { written };
        }
    }
    if !rest.is_empty() {
        return Err(NotANumber);
    }
    // 19 digits always fit in a u64; the wrapping arithmetic above is then exact.
    if !exponent_fits || digits > 19 || significand > MAX_EXACT_SIGNIFICAND {
        return Ok(None);
    }
    let Some(&power) = usize::try_from(exponent.unsigned_abs())
        .ok()
        .and_then(|e| EXACT_POWERS.get(e))
    else {
        return Ok(None);
    };
    let magnitude = significand as f64;
    let value = if exponent < 0 {
        magnitude / power
    } else {
        magnitude * power
    };
    Ok(Some(if negative { -value } else { value }))
}

/// Appends the decimal digits at the front of `rest` to `significand`
/// (wrapping; the caller checks the count) and returns how many there were.
fn take_digits(rest: &mut &[u8], significand: &mut u64) -> u32 {
    let mut count: u32 = 0;
    while let Some((&d @ b'0'..=b'9', tail)) = rest.split_first() {
        *significand = significand
            .wrapping_mul(10)
            .wrapping_add(u64::from(d - b'0'));
        count = count.saturating_add(1);
        *rest = tail;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn std_parse(text: &str) -> Option<f64> {
        text.parse().ok()
    }

    #[test]
    fn the_fast_path_agrees_bit_for_bit_with_the_standard_parser() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut fast = 0;
        for _ in 0..200_000 {
            let int_digits = rng.random_range(1..=10);
            let frac_digits = rng.random_range(0..=12);
            let mut text = String::new();
            if rng.random_bool(0.5) {
                text.push('-');
            }
            for i in 0..int_digits {
                let digit = if i == 0 && int_digits > 1 {
                    rng.random_range(1..=9)
                } else {
                    rng.random_range(0..=9)
                };
                text.push(char::from(b'0' + digit));
            }
            if frac_digits > 0 {
                text.push('.');
                for _ in 0..frac_digits {
                    text.push(char::from(b'0' + rng.random_range(0..=9u8)));
                }
            }
            if rng.random_bool(0.3) {
                text.push(if rng.random_bool(0.5) { 'e' } else { 'E' });
                match rng.random_range(0..3) {
                    0 => text.push('-'),
                    1 => text.push('+'),
                    _ => {}
                }
                text.push_str(&rng.random_range(0..40).to_string());
            }
            let expected = std_parse(&text).expect("valid number");
            let got = parse_f64(text.as_bytes()).expect("parsed");
            assert_eq!(got.to_bits(), expected.to_bits(), "{text}");
            fast += usize::from(matches!(json_number(text.as_bytes()), Ok(Some(_))));
        }
        assert!(fast > 100_000, "the fast path took only {fast} numbers");
    }

    #[test]
    fn hard_cases_fall_back_to_the_standard_parser() {
        for text in [
            "9007199254740993",     // 2^53 + 1: not exact
            "12345678901234567890", // 20 digits
            "1e23",                 // power not exact
            "0.1e-22",              // exponent -23
            "2.2250738585072014e-308",
            "-0",
            "0.0",
        ] {
            assert_eq!(
                parse_f64(text.as_bytes()).map(f64::to_bits),
                std_parse(text).map(f64::to_bits),
                "{text}"
            );
        }
        assert_eq!(parse_f64(b"-0").unwrap().to_bits(), (-0.0f64).to_bits());
    }

    #[test]
    fn the_grammar_is_rfc_8259() {
        for valid in [
            "0",
            "-0",
            "0.5",
            "-0.0e0",
            "10",
            "1E5",
            "1e+5",
            "1e-05",
            "123.456e789",
        ] {
            assert!(json_number(valid.as_bytes()).is_ok(), "{valid}");
        }
        for invalid in [
            "01", "-01", "00", "+1", "1.e5", "1e5.", "Infinity", "NaN", "1 ",
        ] {
            assert_eq!(
                json_number(invalid.as_bytes()),
                Err(NotANumber),
                "{invalid}"
            );
        }
        // Valid but outside the fast path: the general parser's turn.
        assert_eq!(json_number(b"1e23"), Ok(None));
        assert_eq!(json_number(b"1e0000000001"), Ok(None));
        // 2^63 as an exponent: its wrapped value must not be negated.
        assert_eq!(json_number(b"1e-9223372036854775808"), Ok(None));
        assert_eq!(json_number(b"-0.5E+18446744073709551616"), Ok(None));
        assert_eq!(json_number(b"123.456e789"), Ok(None));
        assert_eq!(json_number(b"0.1e-22"), Ok(None));
    }

    #[test]
    fn non_numbers_are_refused_as_before() {
        for text in [
            "", "-", "1.", ".5", "1e", "1e+", "--1", "true", "null", "0x10", "1.5.2",
        ] {
            assert_eq!(json_number(text.as_bytes()), Err(NotANumber), "{text}");
        }
        assert_eq!(parse_f64(b"true"), None);
        assert_eq!(
            parse_f64(b".5"),
            std_parse(".5"),
            "the fallback keeps the old leniency"
        );
    }
}
