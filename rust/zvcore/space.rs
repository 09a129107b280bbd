// SPDX-License-Identifier: GPL-2.0
//! Space levels of a pool, for its space events (like dm-thin's
//! `low_water_mark` event and ZFS's capacity alerts): `low` and `critical`
//! when the live data passes thresholds of the capacity, `full` once a
//! write was refused for want of space. Going up is told at once; going
//! down only once the use is [`HYSTERESIS_PCT`] below the threshold, so
//! that a pool hovering around one does not flood its administrator.
//! `full` ends the same way: once the use is [`HYSTERESIS_PCT`] below what
//! it was when the refusal was told (space came back), like dm-thin's
//! out-of-data-space mode that lasts until the pool grows.

/// How far below a threshold the use must fall before a lower level is
/// told (percentage points).
pub const HYSTERESIS_PCT: u64 = 5;

/// A pool's space level, in increasing severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum SpaceLevel {
    Ok = 0,
    Low = 1,
    Critical = 2,
    /// A write was refused for want of space (ENOSPC), or waits for space
    /// (`no_space_timeout`), since the last check.
    Full = 3,
}

impl SpaceLevel {
    /// The word events and `status` use.
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Low => "low",
            Self::Critical => "critical",
            Self::Full => "full",
        }
    }

    /// The level of a stored value (unknown values read as `Ok`).
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Low,
            2 => Self::Critical,
            3 => Self::Full,
            _ => Self::Ok,
        }
    }
}

/// `full_at` of a pool that is not `full`.
pub const NOT_FULL: u64 = u64::MAX;

/// The thresholds, in percent of the capacity; 0 turns one off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub low_pct: u64,
    pub critical_pct: u64,
}

impl Thresholds {
    /// The defaults: low at 80 %, critical at 95 %.
    pub const DEFAULT: Self = Self {
        low_pct: 80,
        critical_pct: 95,
    };

    /// The level of `pct` percent used, without hysteresis.
    pub fn raw(&self, pct: u64) -> SpaceLevel {
        if self.critical_pct > 0 && pct >= self.critical_pct {
            SpaceLevel::Critical
        } else if self.low_pct > 0 && pct >= self.low_pct {
            SpaceLevel::Low
        } else {
            SpaceLevel::Ok
        }
    }

    /// What may change the told level: the raw level, the one a
    /// hysteresis band lower and whether a `full` told at `full_at` percent
    /// (or [`NOT_FULL`]) may end, one code (a change of it calls for a
    /// check).
    pub fn code(&self, pct: u64, full_at: u64) -> u8 {
        let a = self.raw(pct) as u8;
        let b = self.raw(pct.saturating_add(HYSTERESIS_PCT)) as u8;
        let f = u8::from(full_ends(pct, full_at));
        f.saturating_mul(16)
            .saturating_add(a.saturating_mul(4))
            .saturating_add(b)
    }

    /// The level to tell now, `told` having been told last (`full_at`: the
    /// use when `full` was told, or [`NOT_FULL`]): up at once (`full` when
    /// a write was refused or queued since), down only past the hysteresis
    /// band.
    pub fn level(&self, pct: u64, told: SpaceLevel, refused: bool, full_at: u64) -> SpaceLevel {
        if refused {
            return SpaceLevel::Full;
        }
        if told == SpaceLevel::Full && !full_ends(pct, full_at) {
            return SpaceLevel::Full;
        }
        let raw = self.raw(pct);
        if raw >= told {
            return raw;
        }
        told.min(self.raw(pct.saturating_add(HYSTERESIS_PCT)))
    }
}

/// Whether a `full` told at `full_at` percent ends at `pct` percent: space
/// came back (the use fell by the hysteresis band).
fn full_ends(pct: u64, full_at: u64) -> bool {
    pct.saturating_add(HYSTERESIS_PCT) <= full_at
}

/// Percent of `cap` that `used` is (0 for an empty capacity).
pub fn percent(used: u64, cap: u64) -> u64 {
    if cap == 0 {
        return 0;
    }
    // No 128-bit division in the kernel.
    match used.checked_mul(100) {
        Some(x) => x / cap,
        None => used / (cap / 100).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::SpaceLevel::*;
    use super::*;

    const T: Thresholds = Thresholds::DEFAULT;

    #[test]
    fn up_at_once_down_past_the_band() {
        let mut told = Ok;
        let mut seen = std::vec::Vec::new();
        for pct in [10, 79, 80, 90, 96, 94, 91, 90, 89, 76, 75, 74, 10] {
            let l = T.level(pct, told, false, NOT_FULL);
            if l != told {
                seen.push((pct, l));
                told = l;
            }
        }
        assert_eq!(seen, [(80, Low), (96, Critical), (89, Low), (74, Ok)]);
    }

    #[test]
    fn full_until_space_returns() {
        assert_eq!(T.level(99, Critical, true, NOT_FULL), Full);
        // Told at 99 %: a check at the same use (GC, a commit) or a little
        // below keeps `full`; no level is told twice.
        assert_eq!(T.level(99, Full, false, 99), Full);
        assert_eq!(T.level(95, Full, false, 99), Full);
        // Space came back: still in the critical band.
        assert_eq!(T.level(94, Full, false, 99), Critical);
        assert_eq!(T.level(50, Full, false, 99), Ok);
        // A refusal on a pool far from its thresholds (metadata) is `full`
        // until space comes back too.
        assert_eq!(T.level(10, Ok, true, NOT_FULL), Full);
        assert_eq!(T.level(10, Full, false, 10), Full);
        assert_eq!(T.level(5, Full, false, 10), Ok);
        // The code tells when the end of `full` is reached.
        assert_eq!(T.code(99, 99), T.code(95, 99));
        assert_ne!(T.code(95, 99), T.code(94, 99));
        assert_eq!(T.code(97, NOT_FULL), T.code(96, NOT_FULL));
    }

    #[test]
    fn thresholds_off_and_codes() {
        let off = Thresholds {
            low_pct: 0,
            critical_pct: 0,
        };
        assert_eq!(off.level(100, Ok, false, NOT_FULL), Ok);
        let only_crit = Thresholds {
            low_pct: 0,
            critical_pct: 90,
        };
        assert_eq!(only_crit.level(85, Ok, false, NOT_FULL), Ok);
        assert_eq!(only_crit.level(90, Ok, false, NOT_FULL), Critical);
        // The code changes where the hysteresis band starts too: a check
        // is called for at 74 % (Low told at 80 % ends there).
        assert_ne!(T.code(75, NOT_FULL), T.code(74, NOT_FULL));
        assert_eq!(T.code(50, NOT_FULL), T.code(60, NOT_FULL));
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
    }
}
