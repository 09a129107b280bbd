// SPDX-License-Identifier: GPL-2.0
//! Conventional log zones of a limited span (`INCOMPAT_CONV_LOG_SPAN`,
//! `format::layout::log_zone_blocks`): the journal writes no further than
//! the span in a conventional log zone (it switches, or checkpoints, as at
//! a zone's end), and assembly reads no further, so what lies past it
//! (stale blocks of earlier journals: a conventional zone has no write
//! pointer) costs nothing and is never taken for the journal.
//!
//! `ZVCORE_SEED` replays a run.

mod harness;
mod sim;

use harness::*;
use sim::{seed_from_env, Rng};
use zvcore::format::layout::{log_zone, LOG_ZONES};
use zvcore::format::JOURNAL_MAGIC;

const SPAN: u32 = 24;

/// A one-member conventional pool (SMR-like members without sequential
/// zones take the same path) whose log zones are used for `span` blocks.
fn world(name: &str, span: u32) -> World {
    let seed = seed_from_env(name);
    let mut w = World::with_geoms(Rng::new(seed), seed, vec![small_conv(40)]);
    w.conv_log_blocks = Some(span);
    w.degraded_pct = 0;
    w.explicit_ckpt_pct = 0;
    w.meta_crashes = false;
    w.format();
    w.create_volume(1, b"v", 2000);
    w
}

/// Writes `n` runs of 4 blocks and commits after each.
fn write_and_flush(w: &mut World, first: u64, n: u64) {
    for k in 0..n {
        w.write_exact(1, (first + 8 * k) % 1900, 4);
        assert!(w.commit(false), "commit");
    }
}

/// The journal never passes the span (`World::exec` checks every write),
/// switching log zones and checkpointing for it, and every power cut on
/// the way assembles with everything flushed (the world checks it).
#[test]
fn the_journal_stays_within_the_span() {
    let mut w = world("log_span_stays", SPAN);
    assert_eq!(w.pool_ref().geom().conv_log_blocks(), u64::from(SPAN));
    let mut switches = 0;
    for round in 0..12 {
        write_and_flush(&mut w, 40 * round, 30);
        switches += w.pool_ref().stats().log_switches;
        w.crash_and_recover();
    }
    assert!(
        w.st.conv_span_blocks >= 300,
        "{} journal blocks written in the span",
        w.st.conv_span_blocks
    );
    assert!(
        switches >= 12,
        "{switches} log-zone switches for 360 commits"
    );
}

/// A block past the span that claims to be a newer journal block of the
/// pool (as stale blocks of an earlier journal may, damaged or not) is
/// never read: the assembly sees no damage and the journal goes on.
#[test]
fn blocks_past_the_span_are_never_read() {
    let mut w = world("log_span_past", SPAN);
    write_and_flush(&mut w, 0, 10);
    assert!(w.close(), "closing block");
    // Past the span of both log zones: a block with the journal's magic,
    // the pool's UUID and a far newer sequence number, that does not
    // decode (assembly would count it as damage: a bad block followed by
    // good ones, or newer than everything replayed).
    let mut blk = [0x5au8; 4096];
    blk[..8].copy_from_slice(&JOURNAL_MAGIC.to_le_bytes());
    blk[24..40].copy_from_slice(&w.uuid);
    blk[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
    for i in 0..LOG_ZONES {
        let z = log_zone(w.pool_ref().geom(), 0, i).expect("log zone");
        let (d, local) = w.zone_loc(z);
        let at = w.devs[d].zone_start(local) + u64::from(SPAN) + 3;
        w.devs[d].write(at, &blk).expect("write past the span");
        w.devs[d].flush();
    }
    let resumed = w.st.resumed;
    w.crash_and_recover();
    assert_eq!(w.st.resumed, resumed + 1, "the journal did not go on");
    write_and_flush(&mut w, 400, 40);
    w.crash_and_recover();
}
