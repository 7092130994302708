//! Decimal numbers as records write them (`-12.375`, `1718000000000`): their digits found and
//! valued in one pass, eight at a time, then converted without scanning them again as
//! `str::parse` would.
//!
//! Integers of up to 18 digits are exact. A number with a fraction becomes the nearest `f64`
//! (ties to even), exactly as `str::parse` makes it, by the Eisel–Lemire algorithm (Lemire,
//! "Number parsing at a gigabyte per second", 2021), which for these exponents never needs its
//! slow fallback. Numbers with more than 19 significant digits or more than 22 fraction digits
//! are left to `str::parse`: [`fraction`] returns `None`.

/// Most fraction digits handled here: for 5^-q with q ≥ -22 (and beyond, to -27) Eisel–Lemire's
/// 128-bit product always decides the rounding.
const MAX_FRACTION: usize = 22;
/// Most significant digits handled here: 10^19 - 1 < 2^64.
const MAX_DIGITS: usize = 19;

/// 10^0 ..= 10^19.
const POWERS_OF_TEN: [u64; MAX_DIGITS + 1] = {
    let mut powers = [1u64; MAX_DIGITS + 1];
    let mut i = 1;
    while i <= MAX_DIGITS {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// For f in 1 ..= 22, the 128 leading bits of 5^-f, rounded up (the high word first): the
/// table Eisel–Lemire uses for negative exponents. Entry 0 is unused.
const RECIPROCALS: [(u64, u64); MAX_FRACTION + 1] = reciprocals();

/// Builds [`RECIPROCALS`] by long division of 1 by 5^f, one bit at a time.
const fn reciprocals() -> [(u64, u64); MAX_FRACTION + 1] {
    let mut table = [(0, 0); MAX_FRACTION + 1];
    let mut f = 1;
    while f <= MAX_FRACTION {
        let divisor = 5u64.pow(f as u32);
        let (mut hi, mut lo, mut bits, mut remainder) = (0u64, 0u64, 0, 1u64);
        while bits < 128 {
            remainder *= 2;
            let bit = remainder >= divisor;
            if bit {
                remainder -= divisor;
            }
            // Leading zeros are skipped: the first bit taken is a one.
            if bit || bits > 0 {
                hi = (hi << 1) | (lo >> 63);
                lo = (lo << 1) | bit as u64;
                bits += 1;
            }
        }
        // 5^f divides no power of two, so a remainder is always left: round up.
        let (sum, carry) = lo.overflowing_add(1);
        table[f] = (hi + carry as u64, sum);
        f += 1;
    }
    table
}

/// A run of ASCII digits: how many, and their value (which wraps past 19 digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digits {
    pub len: usize,
    pub value: u64,
}

/// '0' in every byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The digits in `bytes` from `start` on.
#[inline]
pub(crate) fn digits(bytes: &[u8], start: usize) -> Digits {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let mut at = start;
    let mut value = 0u64;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A byte is a digit if its high nibble is 3 and adding 6 keeps it so; each byte of
        // `other` is non-zero if it is not. (Adding 6 to a byte from 0xFA carries into the next;
        // the first non-digit is still flagged, as no digit before it carries.)
        let other = ((x & HIGH) ^ ZEROS) | ((x.wrapping_add(0x0606_0606_0606_0606) & HIGH) ^ ZEROS);
        if other == 0 {
            value = value
                .wrapping_mul(100_000_000)
                .wrapping_add(eight_digits(x));
            at += 8;
            continue;
        }
        // The n digits leading the chunk (0 to 7), moved to its end behind '0's: valued as
        // eight digits without a branch on n.
        let n = (other.trailing_zeros() / 8) as usize;
        let last = ((u128::from(x) << (8 * (8 - n))) as u64) | (ZEROS >> (8 * n));
        value = value
            .wrapping_mul(POWERS_OF_TEN[n])
            .wrapping_add(eight_digits(last));
        return Digits {
            len: at + n - start,
            value,
        };
    }
    // Fewer than eight bytes left.
    while let Some(&b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
        value = value.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        at += 1;
    }
    Digits {
        len: at - start,
        value,
    }
}

/// Eight ASCII digits (the first in the lowest byte) as a number: pairs, then fours, then eight.
#[inline]
fn eight_digits(bytes: u64) -> u64 {
    let v = bytes - ZEROS;
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v * 10_000 + (v >> 32)) & 0xFFFF_FFFF
}

/// An integer of at most 18 digits (so that it fits an `i64`), or `None`.
#[inline]
pub(crate) fn integer(negative: bool, whole: Digits) -> Option<i64> {
    if whole.len > 18 {
        return None;
    }
    let magnitude = whole.value as i64;
    Some(if negative { -magnitude } else { magnitude })
}

/// `whole.part` (the part not empty) as the nearest `f64`, or `None` if it has more digits than
/// are handled here.
#[inline]
pub(crate) fn fraction(negative: bool, whole: Digits, part: Digits) -> Option<f64> {
    let f = part.len;
    if f > MAX_FRACTION || whole.len + f > MAX_DIGITS {
        return None;
    }
    let w = whole.value * POWERS_OF_TEN[f] + part.value;
    let magnitude = if w == 0 { 0.0 } else { eisel_lemire(w, f) };
    Some(if negative { -magnitude } else { magnitude })
}

/// w × 10^-f, correctly rounded, for w > 0 and 1 ≤ f ≤ 22: the 128-bit product of w (normalized)
/// and 5^-f decides the 54 leading bits, from which the mantissa is rounded.
fn eisel_lemire(w: u64, f: usize) -> f64 {
    const MANTISSA_BITS: i32 = 52;
    let q = -(f as i32);
    let zeros = w.leading_zeros() as i32;
    let w = w << zeros;
    let (hi5, lo5) = RECIPROCALS[f];
    let product = u128::from(w) * u128::from(hi5);
    let (mut lo, mut hi) = (product as u64, (product >> 64) as u64);
    // If the bits below the 55 kept are all ones, the next word of 5^-f may carry into them.
    let below = u64::MAX >> (MANTISSA_BITS + 3);
    if hi & below == below {
        let carry = ((u128::from(w) * u128::from(lo5)) >> 64) as u64;
        lo = lo.wrapping_add(carry);
        if carry > lo {
            hi += 1;
        }
    }
    // (For q ≥ -27 a product whose low word is all ones still rounds right: Lemire, §9.1.)
    let top = (hi >> 63) as i32;
    let shift = top + 64 - MANTISSA_BITS - 3;
    let mut mantissa = hi >> shift;
    // floor(log2(10^q)) + 63, and the exponent's bias.
    let power = ((q * (152_170 + 65_536)) >> 16) + 63;
    let mut exponent = power + top - zeros + 1023;
    // Exactly halfway between two floats, which for q < 0 is possible only from q = -4 on
    // (Lemire, §9.1): round to even.
    if lo <= 1 && q >= -4 && mantissa & 3 == 1 && (mantissa << shift) == hi {
        mantissa &= !1;
    }
    mantissa += mantissa & 1;
    mantissa >>= 1;
    if mantissa >= 2 << MANTISSA_BITS {
        // Rounding carried into a new leading bit.
        mantissa = 1 << MANTISSA_BITS;
        exponent += 1;
    }
    mantissa &= !(1 << MANTISSA_BITS);
    // 10^-22 ≤ the value < 10^19: always a normal number.
    f64::from_bits(mantissa | (exponent as u64) << MANTISSA_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64: enough randomness for test inputs, without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn between(&mut self, low: u64, high: u64) -> u64 {
            low + self.below(high - low)
        }

        fn unit(&mut self) -> f64 {
            self.below(1 << 53) as f64 / (1u64 << 53) as f64
        }
    }

    /// Converts a plain decimal (`-12.5`, no exponent) the way the scanner does, followed by
    /// the rest of a record.
    fn convert(text: &str) -> Option<f64> {
        let record = format!("{text},\"f1\":2}}");
        let bytes = record.as_bytes();
        let negative = text.starts_with('-');
        let whole = digits(bytes, usize::from(negative));
        let point = usize::from(negative) + whole.len;
        assert_eq!(bytes[point], b'.', "{text}");
        let part = digits(bytes, point + 1);
        assert_eq!(point + 1 + part.len, text.len(), "{text}");
        super::fraction(negative, whole, part)
    }

    /// Checks `text` converts to exactly what `str::parse` makes of it (or is left to it).
    fn check(text: &str) -> bool {
        let expected: f64 = text.parse().unwrap();
        match convert(text) {
            Some(x) => {
                assert_eq!(
                    x.to_bits(),
                    expected.to_bits(),
                    "{text}: {x:e} vs {expected:e}"
                );
                true
            }
            None => false,
        }
    }

    #[test]
    fn the_reciprocal_table_is_lemires() {
        // The first entries of the table in Lemire's fast_float (and Rust's core).
        let known = [
            (0xcccc_cccc_cccc_cccc, 0xcccc_cccc_cccc_cccd),
            (0xa3d7_0a3d_70a3_d70a, 0x3d70_a3d7_0a3d_70a4),
            (0x8312_6e97_8d4f_df3b, 0x645a_1cac_0831_26ea),
            (0xd1b7_1758_e219_652b, 0xd3c3_6113_404e_a4a9),
            (0xa7c5_ac47_1b47_8423, 0x0fcf_80dc_3372_1d54),
            (0x8637_bd05_af6c_69b5, 0xa63f_9a49_c2c1_b110),
            (0xd6bf_94d5_e57a_42bc, 0x3d32_9076_0469_1b4d),
        ];
        assert_eq!(RECIPROCALS[1..=known.len()], known);
        // Every entry has its top bit set.
        assert!(RECIPROCALS[1..].iter().all(|&(hi, _)| hi >> 63 == 1));
    }

    #[test]
    fn digit_runs_of_every_length_are_found_and_valued() {
        // Runs of 0 to 25 digits, followed by each kind of byte that can end a number, at every
        // offset from the end of the text (the last bytes are read one at a time).
        let mut rng = Rng(5);
        for len in 0..=25 {
            let run: String = (0..len)
                .map(|_| char::from(b'0' + rng.below(10) as u8))
                .collect();
            let expected = run.bytes().fold(0u64, |v, d| {
                v.wrapping_mul(10).wrapping_add(u64::from(d - b'0'))
            });
            // '/' and ':' are the bytes next to '0' and '9', 'é' and 'ÿ' take two bytes each, DEL
            // is the last ASCII one.
            for end in [
                "", ",", "}", ".", "e", " ", "/", ":", "\"", "é", "ÿ", "\u{7f}",
            ] {
                for tail in 0..10 {
                    let text = format!("x{run}{end}{}", "a".repeat(tail));
                    let found = digits(text.as_bytes(), 1);
                    assert_eq!(
                        found,
                        Digits {
                            len,
                            value: expected
                        },
                        "{text:?}"
                    );
                }
            }
        }
        assert_eq!(digits(b"99999999999999999999", 0).len, 20);
        assert_eq!(
            integer(true, digits(b"1718000000000,", 0)),
            Some(-1_718_000_000_000)
        );
        assert_eq!(
            integer(false, digits(b"999999999999999999", 0)),
            Some(999_999_999_999_999_999)
        );
        assert_eq!(integer(false, digits(b"1000000000000000000", 0)), None);
    }

    #[test]
    fn shortest_forms_of_random_doubles_convert_as_std_does() {
        let mut rng = Rng(7);
        let mut handled = 0;
        for i in 0..400_000 {
            // Magnitudes from 1e-6 to 1e12, shortest round-trip text (up to 17 digits).
            let x = rng.unit() * 10f64.powi(rng.below(18) as i32 - 6);
            let x = if i % 2 == 0 { x } else { -x };
            let text = format!("{x:?}");
            if text.contains(['e', 'E']) || !text.contains('.') {
                continue;
            }
            handled += usize::from(check(&text));
            // The same value written with fewer digits.
            let short = format!("{x:.*}", rng.between(1, 8) as usize);
            handled += usize::from(check(&short));
        }
        // Those left to std: the smallest, whose leading fraction zeros count as digits.
        assert!(
            handled > 600_000,
            "most are handled here: {handled} of 800,000"
        );
    }

    #[test]
    fn random_digit_strings_convert_as_std_does() {
        let mut rng = Rng(11);
        let digit = |rng: &mut Rng| char::from(b'0' + rng.below(10) as u8);
        for _ in 0..400_000 {
            let fraction_len = rng.between(1, MAX_FRACTION as u64 + 1) as usize;
            // Up to one digit more than handled here, to see those left to std.
            let integer_len =
                rng.between(1, (MAX_DIGITS + 2 - fraction_len.min(MAX_DIGITS)) as u64);
            let mut text = String::new();
            if rng.below(2) == 0 {
                text.push('-');
            }
            // A leading zero only as the whole integer part, as JSON writes it.
            text.push(char::from(b'1' + rng.below(9) as u8));
            (1..integer_len).for_each(|_| text.push(digit(&mut rng)));
            text.push('.');
            (0..fraction_len).for_each(|_| text.push(digit(&mut rng)));
            check(&text);
            check(&format!("0.{}", &text[text.len() - fraction_len..]));
        }
    }

    #[test]
    fn halfway_values_round_to_even() {
        // Floats in [2^52, 2^53) are one apart, in [2^51, 2^52) a half, in [2^50, 2^51) a
        // quarter: the decimal midway between two of them must round to the even one.
        for (text, expected) in [
            ("9007199254740993.0", 9_007_199_254_740_992.0),
            ("9007199254740995.0", 9_007_199_254_740_996.0),
            ("4503599627370496.5", 4_503_599_627_370_496.0),
            ("4503599627370497.5", 4_503_599_627_370_498.0),
            ("2251799813685248.25", 2_251_799_813_685_248.0),
            ("2251799813685248.75", 2_251_799_813_685_249.0),
            ("1125899906842624.125", 1_125_899_906_842_624.0),
            ("1125899906842624.375", 1_125_899_906_842_624.5),
        ] {
            assert_eq!(convert(text), Some(expected), "{text}");
            assert!(check(text));
        }
        // Random midpoints at each of those spacings.
        let mut rng = Rng(13);
        for _ in 0..100_000 {
            let k = rng.below(3) as u32;
            let n = rng.between(1 << 52, 1 << 53);
            // (2n + 1) / 2^(k + 1), written exactly with k + 1 fraction digits.
            let scaled = (2 * n + 1) * 5u64.pow(k + 1);
            let digits = scaled.to_string();
            let (integer, fraction) = digits.split_at(digits.len() - (k as usize + 1));
            assert!(check(&format!("{integer}.{fraction}")));
            // And just either side of it.
            for near in [scaled - 1, scaled + 1] {
                let digits = near.to_string();
                let (integer, fraction) = digits.split_at(digits.len() - (k as usize + 1));
                assert!(check(&format!("{integer}.{fraction}")));
            }
        }
    }

    #[test]
    fn what_is_not_handled_here_is_left_to_std() {
        assert_eq!(convert("0.12345678901234567890123"), None);
        assert_eq!(convert("12345678901.123456789"), None);
        assert!(check("1234567890.123456789"));
        assert_eq!(convert("-0.0"), Some(-0.0));
        assert!(convert("-0.0").unwrap().is_sign_negative());
        assert_eq!(convert("0.1"), Some(0.1));
    }
}
