// SPDX-License-Identifier: GPL-2.0
//! Size parsing (`20G`, `512MiB`, `1073741824`) and human formatting (`20.0G`).
//!
//! Units are binary (powers of 1024): `K M G T P E`, case-insensitive, with an
//! optional `iB` (`GiB`) or a bare `B` for bytes. `KB`, `MB`, ... are refused
//! as ambiguous (some tools read them as 1000-based, some as 1024-based).
//! A decimal fraction is accepted if the result is a whole number of bytes
//! (`1.5G`).

/// The block size of the ABI: volume sizes are multiples of it.
pub const BLOCK: u64 = 4096;
/// The largest volume size the kernel accepts (2^50 bytes).
pub const MAX_VOLUME: u64 = 1 << 50;

const HINT: &str = "expected a number of bytes or a number with a unit K, M, G, T, P \
                    (or KiB, MiB, ...; powers of 1024), e.g. 20G";

/// Parses a size; the error is a complete sentence for the user.
pub fn parse_size(input: &str) -> Result<u64, String> {
    if input.is_empty() {
        return Err(format!("empty size: {HINT}"));
    }
    let num_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (num, unit) = input.split_at(num_end);
    let shift: u32 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        "p" | "pib" => 50,
        "e" | "eib" => 60,
        "kb" | "mb" | "gb" | "tb" | "pb" | "eb" => {
            let first = &unit[..1];
            return Err(format!(
                "invalid size \"{input}\": unit \"{unit}\" is ambiguous; use \"{}\" or \"{}iB\" \
                 (powers of 1024) or give the size in bytes",
                first.to_ascii_uppercase(),
                first.to_ascii_uppercase()
            ));
        }
        _ => return Err(format!("invalid size \"{input}\": {HINT}")),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (num, None),
    };
    let bad = int.is_empty()
        || matches!(frac, Some(f) if f.is_empty() || f.contains('.') || f.len() > 30);
    if bad {
        return Err(format!("invalid size \"{input}\": {HINT}"));
    }
    let too_large = || format!("invalid size \"{input}\": too large");
    let int_v: u64 = int.parse().map_err(|_| too_large())?;
    let mult = 1u64 << shift;
    let whole = int_v.checked_mul(mult).ok_or_else(too_large)?;
    let mut extra = 0u64;
    if let Some(f) = frac {
        // f has at most 30 digits: f * 2^60 < 10^30 * 2^60 < 2^160 would
        // overflow u128, so scale in two steps with exact remainders.
        let digits = f.len() as u32;
        let f_num: u128 = f
            .parse()
            .map_err(|_| format!("invalid size \"{input}\": {HINT}"))?;
        let denom = 10u128.pow(digits);
        let scaled = f_num
            .checked_mul(u128::from(mult))
            .ok_or_else(|| format!("invalid size \"{input}\": too many decimal places"))?;
        if scaled % denom != 0 {
            return Err(format!(
                "invalid size \"{input}\": not a whole number of bytes"
            ));
        }
        extra = u64::try_from(scaled / denom).map_err(|_| too_large())?;
    }
    whole.checked_add(extra).ok_or_else(too_large)
}

/// Checks a volume size against the ABI: a multiple of 4096, at least 4096,
/// at most 2^50.
pub fn check_volume_size(bytes: u64) -> Result<(), String> {
    if bytes == 0 {
        return Err(format!("size must be at least {BLOCK} bytes"));
    }
    if !bytes.is_multiple_of(BLOCK) {
        let down = bytes / BLOCK * BLOCK;
        let up = down + BLOCK;
        let near = if down == 0 {
            human(up)
        } else {
            format!("{} or {}", human(down), human(up))
        };
        return Err(format!(
            "size {bytes} is not a multiple of {BLOCK} bytes (4 KiB); nearest: {near}"
        ));
    }
    if bytes > MAX_VOLUME {
        return Err(format!(
            "size {} exceeds the largest volume size, 1P (2^50 bytes)",
            human(bytes)
        ));
    }
    Ok(())
}

/// Human size with three significant digits and a binary unit: `512B`,
/// `4.00K`, `20.0G`, `128M`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut unit = 0;
    let mut v = bytes as f64;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let text = if v < 9.995 {
        format!("{v:.2}")
    } else if v < 99.95 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4kib"), Ok(4096));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("1P"), Ok(1 << 50));
        assert_eq!(parse_size("1PiB"), Ok(1 << 50));
        assert_eq!(parse_size("15E"), Ok(15 << 60));
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size("2.25M"), Ok(9 << 18));
        assert_eq!(parse_size("1.0"), Ok(1));
        assert!(parse_size("1.3K")
            .unwrap_err()
            .contains("whole number of bytes"));
        assert!(parse_size("1.5").unwrap_err().contains("whole number"));
        assert!(parse_size("1.").is_err());
        assert!(parse_size(".5G").is_err());
        assert!(parse_size("1.2.3G").is_err());
    }

    #[test]
    fn garbage() {
        for bad in [
            "", "G", "abc", "-1", "+5G", " 5G", "5 G", "5GG", "5Q", "5Gi", "0x10", "5e3", "1,5G",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("size"), "{bad}: {e}");
        }
    }

    #[test]
    fn ambiguous_si_units_are_refused() {
        for bad in ["20GB", "20gb", "1KB", "3MB", "1TB", "1PB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("ambiguous"), "{bad}: {e}");
        }
        assert!(parse_size("20GB").unwrap_err().contains("\"G\" or \"GiB\""));
    }

    #[test]
    fn overflow() {
        assert!(parse_size("18446744073709551615").is_ok());
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("16E").unwrap_err().contains("too large"));
        assert!(parse_size("17179869184G")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("99999999999999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size("15.9999999E").is_err());
        assert!(parse_size("1.000000000000000000000000000001K").is_err());
    }

    #[test]
    fn volume_size_rules() {
        assert_eq!(check_volume_size(4096), Ok(()));
        assert_eq!(check_volume_size(20 << 30), Ok(()));
        assert_eq!(check_volume_size(1 << 50), Ok(()));
        assert!(check_volume_size(0).unwrap_err().contains("at least 4096"));
        let e = check_volume_size(1000).unwrap_err();
        assert!(
            e.contains("not a multiple of 4096") && e.contains("nearest: 4.00K"),
            "{e}"
        );
        let e = check_volume_size(10_000).unwrap_err();
        assert!(e.contains("8.00K or 12.0K"), "{e}");
        assert!(check_volume_size((1 << 50) + 4096)
            .unwrap_err()
            .contains("largest"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(4096), "4.00K");
        assert_eq!(human(20 << 30), "20.0G");
        assert_eq!(human(128 << 20), "128M");
        assert_eq!(human(3 << 29), "1.50G");
        assert_eq!(human(1 << 50), "1.00P");
        assert_eq!(human(u64::MAX), "16.0E");
        assert_eq!(human((1 << 30) - 1), "1024M");
    }
}
