//! Fixed-point decimal numbers for prices and sizes.
//!
//! Every price and size in the pipeline is a [`Fixed`]: an `i64` count of
//! 10⁻⁸ units. Sums of sizes (book totals, volume, CVD) are integer sums, so
//! they never drift: the total after a million updates equals a fresh
//! recomputation bit for bit. Text is parsed straight into the integer (no
//! `f64` round trip), so `"0.1"` is exactly 10 000 000 units.
//!
//! Eight decimals cover every exchange tick and lot size seen on OKX; a value
//! with more decimals is rounded half away from zero to the eighth. The range
//! is ±92 233 720 368.54775807.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A decimal with eight fixed fractional digits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fixed(i64);

/// Number of raw units in one whole unit.
pub const SCALE: i64 = 100_000_000;
const DECIMALS: i32 = 8;

impl Fixed {
    pub const ZERO: Fixed = Fixed(0);

    /// Wraps a raw count of 10⁻⁸ units.
    pub const fn from_raw(raw: i64) -> Fixed {
        Fixed(raw)
    }

    /// The raw count of 10⁻⁸ units.
    pub const fn raw(self) -> i64 {
        self.0
    }

    /// Whole units, e.g. `Fixed::from_int(3)` is 3.0.
    pub const fn from_int(units: i64) -> Fixed {
        Fixed(units * SCALE)
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Nearest `f64`. Exact for every value below 2⁵³ raw units, and the
    /// division is correctly rounded, so the shortest `f64` text of the
    /// result is the decimal itself (`30247.5`, `0.1`).
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// From a binary float (SQLite `REAL` columns), rounded to eight
    /// decimals. `None` for NaN, infinities and values out of range.
    pub fn from_f64(value: f64) -> Option<Fixed> {
        if !value.is_finite() {
            return None;
        }
        let scaled = (value * SCALE as f64).round();
        if scaled.abs() >= 9.2e18 {
            return None;
        }
        Some(Fixed(scaled as i64))
    }

    /// Parses decimal text: optional sign, digits with an optional fraction,
    /// optional exponent (`1e-5`). `None` for anything else, including
    /// `NaN`/`inf`, and for values out of range.
    pub fn parse(text: &str) -> Option<Fixed> {
        parse_decimal(text.as_bytes())
    }

    /// As [`Fixed::parse`], on bytes.
    #[inline]
    pub fn parse_bytes(text: &[u8]) -> Option<Fixed> {
        parse_decimal(text)
    }

    /// From the digits of a decimal: the integer part and the fraction,
    /// each as (value, number of digits), as [`digit_run`] reads them.
    /// `None` without digits, beyond 18 digits or 8 decimals, or out of
    /// range.
    #[inline(always)]
    pub(crate) fn from_decimal_parts(
        negative: bool,
        int: (u64, usize),
        frac: (u64, usize),
    ) -> Option<Fixed> {
        let (int_part, int_digits) = int;
        let (frac_part, decimals) = frac;
        if int_digits + decimals == 0 || int_digits + decimals > 18 || decimals > 8 {
            return None;
        }
        let raw = int_part
            .checked_mul(POW10[0])?
            .checked_add(frac_part * POW10[decimals])?;
        let raw = i64::try_from(raw).ok()?;
        Some(Fixed(if negative { -raw } else { raw }))
    }

    pub fn checked_add(self, other: Fixed) -> Option<Fixed> {
        self.0.checked_add(other.0).map(Fixed)
    }

    /// Saturating sum, for running totals that must never panic.
    pub fn saturating_add(self, other: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Fixed) -> Fixed {
        Fixed(self.0.saturating_sub(other.0))
    }
}

/// `POW10[d]` is 10^(8 − d): the raw units of a last decimal at `d`.
static POW10: [u64; 9] = [
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

#[inline]
fn parse_decimal(s: &[u8]) -> Option<Fixed> {
    match parse_simple(s) {
        Some(v) => Some(v),
        None => parse_general(s),
    }
}

/// The common case, fast: at most 18 digits, at most 8 decimals, no
/// exponent. `None` sends anything else to [`parse_general`].
#[inline(always)]
fn parse_simple(s: &[u8]) -> Option<Fixed> {
    let (negative, mut k) = match s.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let (int_part, int_digits) = digit_run(s, &mut k);
    let (mut frac, mut decimals) = (0, 0);
    if k < s.len() && s[k] == b'.' {
        k += 1;
        (frac, decimals) = digit_run(s, &mut k);
    }
    if k != s.len() {
        return None;
    }
    Fixed::from_decimal_parts(negative, (int_part, int_digits), (frac, decimals))
}

/// Reads a run of ASCII digits at `k`: its value (wrapped past 19 digits;
/// [`Fixed::from_decimal_parts`] rejects those by count) and its length.
#[inline(always)]
pub(crate) fn digit_run(b: &[u8], k: &mut usize) -> (u64, usize) {
    let start = *k;
    let mut value: u64 = 0;
    while *k < b.len() && b[*k].wrapping_sub(b'0') < 10 {
        value = value.wrapping_mul(10).wrapping_add((b[*k] - b'0') as u64);
        *k += 1;
    }
    (value, *k - start)
}

/// Reads `b[s..e]`, all of it, as an unsigned plain decimal (`30247.5`,
/// `0`, `.5`, `1.`), exactly as [`digit_run`] + [`Fixed::from_decimal_parts`]
/// would; `None` for anything else.
///
/// For callers that already know where each number ends (the level
/// parser finds every field's delimiters first), so numbers are read
/// independently of one another instead of each waiting for the previous
/// one's end. A field of at most eight bytes with eight bytes to load is
/// read from one 8-byte word without a loop over its digits: the bytes
/// that are not digits must be none or one dot, the digits are packed
/// together without the dot and converted eight at a time (three
/// multiplications).
#[inline(always)]
pub(crate) fn plain_decimal_exact(b: &[u8], s: usize, e: usize) -> Option<Fixed> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let len = e.wrapping_sub(s);
    let window = b
        .get(s..s.wrapping_add(8))
        .and_then(|w| <[u8; 8]>::try_from(w).ok());
    let (Some(window), 1..=8) = (window, len) else {
        return plain_decimal_bytewise(b.get(s..e)?);
    };
    // The field's bytes as digit values (a xor: no borrow between
    // bytes), moved to the top of the word: the bytes below are zeros,
    // leading zero digits.
    let t = (u64::from_le_bytes(window) ^ (0x30 * ONES)) << (8 * (8 - len));
    // Bit 7 of each byte that is not an ASCII digit (exact up to the
    // first such byte: an addition carries out of a byte only when that
    // byte is not a digit).
    let non_digit = (t.wrapping_add(0x76 * ONES) | t) & (0x80 * ONES);
    let (digits, decimals) = if non_digit == 0 {
        (t, 0)
    } else {
        // One dot and nothing else: the digits below it (the integer
        // part) move up a byte over it.
        let dot = (non_digit.trailing_zeros() / 8) as usize;
        if non_digit & (non_digit - 1) != 0 || (t >> (8 * dot)) as u8 != b'.' ^ 0x30 || len == 1 {
            return None;
        }
        let below = (1u64 << (8 * dot)) - 1;
        (((t & below) << 8) | (t & !(below << 8 | 0xFF)), 7 - dot)
    };
    // At most eight digits and seven decimals: value < 10^8, times at
    // most 10^8, fits.
    Some(Fixed((eight_digits(digits) * POW10[decimals]) as i64))
}

/// Eight decimal digits, one per byte (values 0–9, the most significant
/// in the lowest byte), as a number.
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 0x000F_4240_0000_0064; // 100 + (1_000_000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10_000 << 32)
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

/// [`plain_decimal_exact`] a byte at a time, for fields near the end of
/// the text or longer than eight bytes.
#[cold]
#[inline(never)]
fn plain_decimal_bytewise(b: &[u8]) -> Option<Fixed> {
    // `parse_simple` without its sign.
    if matches!(b.first(), Some(b'+' | b'-')) {
        return None;
    }
    parse_simple(b)
}

#[cold]
#[inline(never)]
fn parse_general(s: &[u8]) -> Option<Fixed> {
    let mut i = 0;
    let negative = match s.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    // Significant digits as an integer, and the power of ten they are
    // scaled by.
    let mut mantissa: i128 = 0;
    let mut exp10: i32 = 0;
    let mut digits = 0usize;
    let mut seen_dot = false;
    while i < s.len() {
        let c = s[i];
        match c {
            b'0'..=b'9' => {
                digits += 1;
                if mantissa < 10i128.pow(30) {
                    mantissa = mantissa * 10 + (c - b'0') as i128;
                    if seen_dot {
                        exp10 -= 1;
                    }
                } else if !seen_dot {
                    // Beyond 30 significant digits: keep the magnitude only.
                    exp10 += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() {
        if s[i] != b'e' && s[i] != b'E' {
            return None;
        }
        i += 1;
        let mut exp_negative = false;
        if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
            exp_negative = s[i] == b'-';
            i += 1;
        }
        let start = i;
        let mut e: i32 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            e = e.saturating_mul(10).saturating_add((s[i] - b'0') as i32);
            i += 1;
        }
        if i == start || i != s.len() {
            return None;
        }
        exp10 = exp10.saturating_add(if exp_negative { -e } else { e });
    }
    // value = mantissa × 10^exp10; we want value × 10^8.
    let shift = exp10.saturating_add(DECIMALS);
    let raw: i128 = if mantissa == 0 {
        0
    } else if shift >= 0 {
        if shift > 30 {
            return None;
        }
        mantissa.checked_mul(10i128.pow(shift as u32))?
    } else {
        let down = -shift;
        if down > 38 {
            0
        } else {
            let div = 10i128.pow(down as u32);
            let q = mantissa / div;
            let r = mantissa % div;
            // The mantissa is unsigned here: round half away from zero.
            if r * 2 >= div {
                q + 1
            } else {
                q
            }
        }
    };
    let raw = if negative { -raw } else { raw };
    if raw > i64::MAX as i128 || raw < i64::MIN as i128 {
        return None;
    }
    Some(Fixed(raw as i64))
}

impl fmt::Display for Fixed {
    /// Plain decimal without trailing zeros: `30247.5`, `0.001`, `12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0 as i128;
        let sign = if raw < 0 { "-" } else { "" };
        let abs = raw.unsigned_abs();
        let whole = abs / SCALE as u128;
        let frac = abs % SCALE as u128;
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let text = format!("{frac:08}");
            write!(f, "{sign}{whole}.{}", text.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> i64 {
        Fixed::parse(s)
            .unwrap_or_else(|| panic!("{s} should parse"))
            .raw()
    }

    /// Every field over digits, dots and a few other bytes (one above
    /// ASCII among them), from empty to past the 8-byte word, with and
    /// without room to load a word: the word-at-a-time reader gives what
    /// the byte-wise one gives.
    #[test]
    fn plain_decimal_exact_reads_as_the_bytewise_reader() {
        const ALPHABET: &[u8] = b"0159.\",\xff:/";
        let mut field = Vec::new();
        let mut checked = 0u64;
        for len in 0..=11u32 {
            let combos = (ALPHABET.len() as u64).pow(len.min(6));
            for mut n in 0..combos {
                field.clear();
                for j in 0..len {
                    // Past six bytes, a digit pattern with a dot now and
                    // then, so that long numbers are seen too.
                    field.push(if j < 6 {
                        let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
                        n /= ALPHABET.len() as u64;
                        c
                    } else {
                        b"7340.2"[(j as usize * 5 + len as usize) % 6]
                    });
                }
                let slow = plain_decimal_bytewise(&field);
                for tail in [&b""[..], b"\"", b"\", \"0\"]]"] {
                    let mut b = b"[\"".to_vec();
                    b.extend_from_slice(&field);
                    b.extend_from_slice(tail);
                    let fast = plain_decimal_exact(&b, 2, 2 + field.len());
                    assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&b));
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000, "{checked}");
        assert_eq!(
            plain_decimal_exact(b"12345678\"]]", 0, 8),
            Fixed::parse("12345678")
        );
    }

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(p("0.1"), 10_000_000);
        assert_eq!(p("30247.5"), 3_024_750_000_000);
        assert_eq!(p("-2.25"), -225_000_000);
        assert_eq!(p("+7"), 700_000_000);
        assert_eq!(p("50000.0"), 5_000_000_000_000);
        assert_eq!(p(".5"), 50_000_000);
        assert_eq!(p("5."), 500_000_000);
        assert_eq!(p("0.00000001"), 1);
    }

    #[test]
    fn parses_exponents() {
        assert_eq!(p("1e-5"), 1_000);
        assert_eq!(p("2.5E3"), 250_000_000_000);
        assert_eq!(p("1e+2"), 10_000_000_000);
    }

    #[test]
    fn rounds_past_eight_decimals_half_away_from_zero() {
        assert_eq!(p("0.000000015"), 2);
        assert_eq!(p("0.000000014"), 1);
        assert_eq!(p("-0.000000015"), -2);
        assert_eq!(p("1e-20"), 0);
    }

    #[test]
    fn rejects_non_numbers_and_overflow() {
        for bad in [
            "", "-", ".", "abc", "1.2.3", "NaN", "inf", "1e", "1x", "1e5x", "1e400",
        ] {
            assert_eq!(Fixed::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Fixed::parse("100000000000"), None);
    }

    #[test]
    fn from_f64_matches_text() {
        for s in ["0.1", "30247.5", "0.00012345", "1234567.89"] {
            let f: f64 = s.parse().unwrap();
            assert_eq!(Fixed::from_f64(f), Fixed::parse(s), "{s}");
        }
        assert_eq!(Fixed::from_f64(f64::NAN), None);
        assert_eq!(Fixed::from_f64(f64::INFINITY), None);
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Fixed::parse("30247.50").unwrap().to_string(), "30247.5");
        assert_eq!(Fixed::parse("12").unwrap().to_string(), "12");
        assert_eq!(Fixed::parse("-0.001").unwrap().to_string(), "-0.001");
        assert_eq!(Fixed::parse("0.1").unwrap().to_f64(), 0.1);
    }
}
