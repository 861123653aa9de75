//! JSON numbers to `f64`, with Clinger's fast path for the short decimals
//! that model answers are made of (`0.1234`, `-3`, `1e-2`).
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

/// The value of a JSON number token; `None` when it is not one a float
/// parser accepts.
pub fn parse_f64(token: &[u8]) -> Option<f64> {
    fast_path(token).or_else(|| std::str::from_utf8(token).ok()?.parse().ok())
}

/// Appends the decimal digits at the front of `rest` to `significand`
/// (wrapping; the caller checks the count) and returns how many there were.
fn take_digits(rest: &mut &[u8], significand: &mut u64) -> u32 {
    let mut count = 0;
    while let Some((&d @ b'0'..=b'9', tail)) = rest.split_first() {
        *significand = significand
            .wrapping_mul(10)
            .wrapping_add(u64::from(d - b'0'));
        count += 1;
        *rest = tail;
    }
    count
}

/// RFC 8259 §6: `[ minus ] int [ frac ] [ exp ]`, when short enough.
fn fast_path(token: &[u8]) -> Option<f64> {
    let (negative, mut rest) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    let mut significand: u64 = 0;
    let int_digits = take_digits(&mut rest, &mut significand);
    let mut digits = int_digits;
    let mut exponent: i32 = 0;
    if let Some((b'.', tail)) = rest.split_first() {
        rest = tail;
        let fraction_digits = take_digits(&mut rest, &mut significand);
        if fraction_digits == 0 {
            return None;
        }
        digits += fraction_digits;
        exponent = -i32::try_from(fraction_digits).ok()?;
    }
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
        // More than 9 digits could have wrapped; exponents that long are
        // far outside the fast path anyway.
        if exponent_digits == 0 || exponent_digits > 9 {
            return None;
        }
        let written = i32::try_from(written).ok()?;
        exponent = exponent.checked_add(if exponent_negative { -written } else { written })?;
    }
    // 19 digits always fit in a u64; the wrapping arithmetic above is then exact.
    if int_digits == 0 || !rest.is_empty() || digits > 19 || significand > MAX_EXACT_SIGNIFICAND {
        return None;
    }
    let power = *EXACT_POWERS.get(exponent.unsigned_abs() as usize)?;
    let magnitude = significand as f64;
    let value = if exponent < 0 {
        magnitude / power
    } else {
        magnitude * power
    };
    Some(if negative { -value } else { value })
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
            fast += usize::from(fast_path(text.as_bytes()).is_some());
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
    fn non_numbers_are_refused_as_before() {
        for text in [
            "", "-", "1.", ".5", "1e", "1e+", "--1", "true", "null", "0x10", "1.5.2",
        ] {
            assert_eq!(fast_path(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse_f64(b"true"), None);
        assert_eq!(
            parse_f64(b".5"),
            std_parse(".5"),
            "the fallback keeps the old leniency"
        );
    }
}
