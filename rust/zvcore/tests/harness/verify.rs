// SPDX-License-Identifier: GPL-2.0
//! Reads checked against the reference model, the verifier and the
//! space accounting checks, and a zone report for failures.

use super::*;

impl World {
    pub fn read_check(&mut self) {
        let Some((vol, size)) = self.pick_vol() else {
            return;
        };
        if size == 0 {
            return;
        }
        let n = self.rng.range(1, 16.min(size));
        let lba = self.rng.below(size - n + 1);
        self.st.reads += 1;
        let got = self
            .read_range(vol, lba, n)
            .unwrap_or_else(|e| panic!("read: {e}"));
        let v = self.vols.iter().find(|v| v.id == vol).unwrap();
        for (k, ver) in got.iter().enumerate() {
            let want = v.blocks[lba as usize + k].cur;
            assert_eq!(
                *ver,
                want,
                "vol {vol} lba {}: read version {ver}, expected {want}",
                lba + k as u64
            );
        }
    }

    /// Reads through the engine; returns the version of each block.
    pub fn read_range(&mut self, vol: u32, lba: u64, n: u64) -> Result<Vec<u64>, String> {
        let mut out = Vec::new();
        let mut runs = [ReadRun::default(); 4];
        let mut l = lba;
        let mut buf = vec![0u8; BS];
        while l < lba + n {
            let k = self
                .pool
                .as_ref()
                .unwrap()
                .read_plan(vol, l, lba + n - l, &mut runs)
                .map_err(|e| format!("read_plan: {e:?}"))?;
            for r in &runs[..k] {
                match r.addr {
                    None => out.extend(std::iter::repeat_n(0, r.len as usize)),
                    Some(a) => {
                        // One device read per run, as the kernel does: a
                        // run must stay inside one zone of one member.
                        let (d, off) = self.loc(a);
                        let zb = self.geoms[d].zone_blocks;
                        if off / zb != (off + r.len - 1) / zb {
                            return Err(format!("read run {r:?} crosses a zone boundary"));
                        }
                        buf.resize(r.len as usize * BS, 0);
                        self.devs[d].read(off, &mut buf).map_err(|e| {
                            format!("vol {vol} lba {}: device read of {r:?}: {e:?}", r.lba)
                        })?;
                        for j in 0..r.len {
                            let b = &buf[j as usize * BS..(j as usize + 1) * BS];
                            out.push(block_version(b, vol, r.lba + j)?);
                        }
                    }
                }
                l += r.len;
            }
        }
        Ok(out)
    }

    pub fn run_verify(&mut self, when: &str) {
        let full = bitmap_words(self.pool_ref().geom().total_blocks());
        // Half the time a window of the pool (one pass over the tables per
        // window), as on pools too large for a whole bitmap.
        let words = if self.rng.pct(50) {
            full
        } else {
            self.rng.range(1, full as u64) as usize
        };
        let pool = self.pool.as_mut().unwrap();
        let mut bm = vec![0u64; words];
        let mut counts = vec![0u64; pool.geom().nr_zones() as usize];
        let mut probs: Vec<Problem> = Vec::new();
        let n = verify(pool, &mut bm, &mut counts, &mut |p| probs.push(p)).expect("verify");
        assert_eq!(n, 0, "verifier {when}: {:?}", &probs[..probs.len().min(10)]);
        self.check_space(when);
    }

    /// Pool used space is exactly the distinct live blocks (plus writes in
    /// flight), and each volume's exclusive / shared split matches who maps
    /// what.
    pub fn check_space(&mut self, when: &str) {
        let pool = self.pool.as_ref().unwrap();
        let mut owners: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
        let mut mapped: Vec<(u32, Vec<u64>)> = Vec::new();
        for v in pool.volumes().iter() {
            let Some(t) = v.table else { continue };
            let mut addrs = Vec::new();
            let mut runs = [ReadRun::default(); 8];
            let mut l = 0;
            while l < t.size() {
                let k = pool.read_plan(v.id, l, t.size() - l, &mut runs).unwrap();
                for r in &runs[..k] {
                    if let Some(a) = r.addr {
                        for j in 0..r.len {
                            addrs.push(a + j);
                            *owners.entry(a + j).or_insert(0) += 1;
                        }
                    }
                    l += r.len;
                }
            }
            mapped.push((v.id, addrs));
        }
        let inflight: u64 = pool.alloc().zones().iter().map(|z| z.inflight()).sum();
        assert_eq!(
            pool.alloc().used_blocks(),
            owners.len() as u64 + inflight,
            "{when}: used space is not the distinct live blocks"
        );
        assert_eq!(
            pool.shared_live_blocks(),
            owners.values().filter(|&&c| c > 1).count() as u64,
            "{when}: pool shared blocks"
        );
        for (id, addrs) in mapped {
            let sp = pool.vol_space(id).unwrap();
            let excl = addrs.iter().filter(|a| owners[a] == 1).count() as u64;
            assert_eq!(sp.mapped, addrs.len() as u64, "{when}: vol {id} mapped");
            assert_eq!(
                (sp.exclusive, sp.shared),
                (excl, addrs.len() as u64 - excl),
                "{when}: vol {id} exclusive/shared"
            );
        }
    }

    /// Member `d`'s zones active on the device next to what the allocator
    /// thinks of them (for a failure report).
    pub fn active_zones(&self, d: usize) -> String {
        let dv = &self.devs[d];
        let a = self.pool_ref().alloc();
        let mut out = format!(
            "allocator (open, active): {:?}",
            a.dev_open_active(d as u16)
        );
        for local in 0..dv.g.nr_zones {
            let Some((c, wp)) = dv.report(local) else {
                continue;
            };
            if matches!(c, Cond::Empty | Cond::Full) {
                continue;
            }
            let z = self.zone_first[d] + local;
            let zi = a
                .zone(z)
                .map(|zi| (zi.state(), zi.wp(), zi.inflight(), zi.held()));
            out += &format!("\n  zone {z}: device {c:?} at {wp}; allocator {zi:?}");
        }
        out
    }
}
