// SPDX-License-Identifier: GPL-2.0
//! zvcrash: crash-consistency workload for zvpool volumes (see lib.rs).
//!
//!   zvcrash write DEV SEED [PER_ROUND [POOLDIR VOL EVERY]]
//!       rounds of stamped writes, each followed by a flush (fsync); prints
//!       "durable R" after each flush; runs until killed (the power cut).
//!       With POOLDIR (a pool's configfs directory), VOL and EVERY: after
//!       every EVERY-th round's flush, takes snapshot `VOL@rR` of the
//!       volume (it holds exactly rounds 1..=R) and deletes the previous
//!       one, printing "snapshot R".
//!   zvcrash verify DEV SEED DURABLE [PER_ROUND]
//!       checks every block against what rounds 1..=DURABLE (durable) and
//!       the next two (in flight at the cut) wrote; exit 1 on any violation.
//!   zvcrash scan DEV SEED SECONDS
//!       while `write` runs on DEV: reads random blocks with O_DIRECT for
//!       SECONDS; every block must read as zeros (never written yet) or a
//!       stamp of this run for this very block, never older than what an
//!       earlier read of it returned (`ScanState`). Prints the reads done;
//!       exit 1 on any violation.
//!   zvcrash journal FILE FIRST_BLOCK COUNT
//!       lists the journal blocks among COUNT blocks from FIRST_BLOCK (a log
//!       zone): `BLOCK SEQ CKPT_GEN COMMIT_SEQ FLAGS RECORDS valid|invalid
//!       POOL_UUID`, stopping at the first block that is neither a journal
//!       block nor a superblock.
//!   zvcrash pool FILE BLOCK
//!       prints the pool UUID of the superblock at BLOCK (exit 1 if none).
//!   zvcrash flip FILE BYTE
//!       flips bit 4 of byte BYTE of FILE (damage that breaks a checksum).
//!   zvcrash reseal FILE BLOCK OFFSET WIDTH VALUE
//!       stores VALUE (WIDTH bytes, little-endian) at OFFSET of 4 KiB block
//!       BLOCK of FILE and recomputes the block's CRC32C.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::exit;
use zvcrash::{check, decode, expectations, meta, mix, round_blocks, stamp, ScanState, BLOCK};

/// `O_DIRECT` (x86-64 and most architectures Linux runs zvpool on): reads
/// must reach the volume, not the page cache.
const O_DIRECT: i32 = 0o40000;

fn num(s: Option<&String>, what: &str) -> u64 {
    let Some(s) = s else {
        eprintln!("zvcrash: missing {what}");
        exit(2)
    };
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|_| {
        eprintln!("zvcrash: bad {what}: {s}");
        exit(2)
    })
}

/// `journal`, `flip`, `reseal` (the damage tests' tools).
fn meta_cmd(cmd: &str, args: &[String]) -> Result<(), String> {
    let path = args.get(2).ok_or("missing FILE")?;
    let f = OpenOptions::new()
        .read(true)
        .write(cmd == "flip" || cmd == "reseal")
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut b = vec![0u8; meta::BLOCK];
    let at = |blk: u64| blk * meta::BLOCK as u64;
    match cmd {
        "journal" => {
            let first = num(args.get(3), "first block");
            let count = num(args.get(4), "count");
            for blk in first..first + count {
                if f.read_exact_at(&mut b, at(blk)).is_err() {
                    break;
                }
                match meta::journal_info(&b) {
                    Some(j) => println!(
                        "{blk} {} {} {} {} {} {} {}",
                        j.seq,
                        j.ckpt_gen,
                        j.commit_seq,
                        j.flags,
                        j.records,
                        if j.valid { "valid" } else { "invalid" },
                        j.pool
                    ),
                    None if meta::is_superblock(&b) => {}
                    None => break,
                }
            }
        }
        "pool" => {
            let blk = num(args.get(3), "block");
            f.read_exact_at(&mut b, at(blk))
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                meta::superblock_pool(&b).ok_or("no superblock there")?
            );
        }
        "flip" => {
            let off = num(args.get(3), "byte offset");
            let mut c = [0u8; 1];
            f.read_exact_at(&mut c, off).map_err(|e| e.to_string())?;
            c[0] ^= 0x10;
            f.write_all_at(&c, off).map_err(|e| e.to_string())?;
        }
        _ => {
            let blk = num(args.get(3), "block");
            let off = num(args.get(4), "offset") as usize;
            let width = num(args.get(5), "width") as usize;
            let value = num(args.get(6), "value");
            f.read_exact_at(&mut b, at(blk))
                .map_err(|e| e.to_string())?;
            meta::reseal(&mut b, off, width, value)?;
            f.write_all_at(&b, at(blk)).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(cmd @ ("journal" | "pool" | "flip" | "reseal")) = args.get(1).map(String::as_str) {
        if let Err(e) = meta_cmd(cmd, &args) {
            eprintln!("zvcrash {cmd}: {e}");
            exit(1);
        }
        return;
    }
    let (cmd, dev) = match (args.get(1), args.get(2)) {
        (Some(c), Some(d)) => (c.as_str(), d.as_str()),
        _ => {
            eprintln!(
                "usage: zvcrash write DEV SEED [PER_ROUND [POOLDIR VOL EVERY]] | verify DEV SEED DURABLE [PER_ROUND]"
            );
            exit(2)
        }
    };
    let seed = num(args.get(3), "seed");
    let f = OpenOptions::new()
        .read(true)
        .write(cmd == "write")
        .custom_flags(if cmd == "scan" { O_DIRECT } else { 0 })
        .open(dev)
        .unwrap_or_else(|e| {
            eprintln!("zvcrash: {dev}: {e}");
            exit(1)
        });
    let bytes = f.metadata().map(|_| ()).and_then(|_| {
        use std::io::{Seek, SeekFrom};
        let mut g = &f;
        g.seek(SeekFrom::End(0))
    });
    let nblocks = match bytes {
        Ok(b) if b >= BLOCK as u64 => b / BLOCK as u64,
        _ => {
            eprintln!("zvcrash: {dev}: cannot size it");
            exit(1)
        }
    };
    match cmd {
        "write" => {
            let per = args
                .get(4)
                .map(|_| num(args.get(4), "per-round"))
                .unwrap_or(256);
            let snap = match (args.get(5), args.get(6)) {
                (Some(dir), Some(vol)) => {
                    Some((dir.as_str(), vol.as_str(), num(args.get(7), "every").max(1)))
                }
                _ => None,
            };
            let mut out = std::io::stdout();
            let mut prev: Option<String> = None;
            for r in 1.. {
                for b in round_blocks(seed, r, nblocks, per) {
                    if let Err(e) = f.write_at(&stamp(seed, b, r), b * BLOCK as u64) {
                        eprintln!("zvcrash: write of block {b} in round {r}: {e}");
                        exit(1)
                    }
                }
                if let Err(e) = f.sync_all() {
                    eprintln!("zvcrash: flush of round {r}: {e}");
                    exit(1)
                }
                let _ = writeln!(out, "# zvcrash: durable {r}");
                if let Some((dir, vol, _)) = snap.filter(|s| r % s.2 == 0) {
                    let name = format!("{vol}@r{r}");
                    match std::fs::write(format!("{dir}/snapshot"), &name) {
                        Ok(()) => {
                            let _ = writeln!(out, "# zvcrash: snapshot {r}");
                            if let Some(p) = prev.replace(name) {
                                if let Err(e) = std::fs::write(format!("{dir}/delete_volume"), &p) {
                                    let _ = writeln!(out, "# zvcrash: delete of {p}: {e}");
                                }
                            }
                        }
                        Err(e) => {
                            let _ = writeln!(out, "# zvcrash: snapshot {r}: {e}");
                        }
                    }
                }
                let _ = out.flush();
            }
        }
        "verify" => {
            let durable = num(args.get(4), "durable round");
            let per = args
                .get(5)
                .map(|_| num(args.get(5), "per-round"))
                .unwrap_or(256);
            let (last, later) = expectations(seed, durable, nblocks, per);
            let mut buf = vec![0u8; BLOCK];
            let (mut bad, mut written, mut inflight) = (0u64, 0u64, 0u64);
            for b in 0..nblocks {
                if let Err(e) = f.read_exact_at(&mut buf, b * BLOCK as u64) {
                    eprintln!("zvcrash: read of block {b}: {e}");
                    exit(1)
                }
                let found = decode(seed, b, &buf);
                let (l, m) = (last[b as usize], later[b as usize]);
                if let Err(why) = check(&found, l, m, durable) {
                    bad += 1;
                    if bad <= 10 {
                        println!("# zvcrash: block {b}: {why}");
                    }
                }
                written += u64::from(l > 0);
                inflight += u64::from(matches!(found, zvcrash::Found::Round(r) if r > durable));
            }
            println!(
                "# zvcrash: seed {seed:#x}, {durable} durable rounds: {written} blocks written durably, \
                 {inflight} blocks of later rounds present, {bad} violations"
            );
            exit(i32::from(bad > 0))
        }
        "scan" => {
            let secs = num(args.get(4), "seconds");
            // O_DIRECT wants an aligned buffer.
            let mut raw = vec![0u8; 2 * BLOCK];
            let off = raw.as_ptr().align_offset(BLOCK);
            let Some(buf) = raw.get_mut(off..off + BLOCK) else {
                eprintln!("zvcrash: no aligned buffer");
                exit(1)
            };
            let mut st = ScanState::new(nblocks);
            let t0 = std::time::Instant::now();
            let (mut reads, mut bad) = (0u64, 0u64);
            let mut s = mix(seed ^ 0x5ca9);
            while t0.elapsed().as_secs() < secs {
                s = mix(s);
                let b = s % nblocks;
                if let Err(e) = f.read_exact_at(buf, b * BLOCK as u64) {
                    eprintln!("zvcrash: read of block {b}: {e}");
                    exit(1)
                }
                reads += 1;
                if let Err(why) = st.saw(b, &decode(seed, b, buf)) {
                    bad += 1;
                    if bad <= 10 {
                        println!("# zvcrash: {why}");
                    }
                }
            }
            println!("# zvcrash: scan: {reads} reads, {bad} violations");
            exit(i32::from(bad > 0))
        }
        _ => {
            eprintln!("zvcrash: unknown command {cmd}");
            exit(2)
        }
    }
}
