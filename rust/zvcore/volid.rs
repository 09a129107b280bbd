// SPDX-License-Identifier: GPL-2.0
//! The stable UUID of a volume: an RFC 9562 version 5 (SHA-1, name-based)
//! UUID in the zvpool namespace [`NAMESPACE`] of the name
//! `POOL-UUID/ID/NAME` (the pool's UUID as `8-4-4-4-12` lower-case hex, the
//! volume's id in decimal, its name). The kernel shows it in sysfs
//! (`/sys/block/zvpoolN/zvpool/uuid`) and in the disk's uevent
//! (`ZVPOOL_UUID`); `zvpoolctl volume ident` derives the same value on
//! kernels without those (tools/zvpoolctl/src/uuid.rs, checked against this
//! one by its tests).
//!
//! Why SHA-1 here and not the kernel's: the kernel's SHA-1 library
//! (`CONFIG_CRYPTO_LIB_SHA1`) is a hidden option that only other options
//! select; an out-of-tree module can neither select it nor rely on it being
//! built in (the test kernel has none). Hashing a name of at most 95 bytes
//! once per disk addition needs no speed, and the hash is used for naming,
//! not for security.

/// A UUID's 16 bytes.
pub type Uuid = [u8; 16];

/// The namespace of zvpool volume UUIDs (a random version 4 UUID chosen
/// once; never change it: every volume UUID depends on it). The same as
/// `NAMESPACE` in tools/zvpoolctl/src/uuid.rs.
pub const NAMESPACE: Uuid = [
    0x7a, 0x1c, 0x5e, 0x0d, 0x93, 0x4b, 0x4f, 0x2e, 0xa6, 0x10, 0x3c, 0x8d, 0x55, 0xe2, 0x71, 0x9f,
];

/// Longest volume name hashed (longer names are cut: names are at most 31
/// bytes in the configfs ABI).
pub const MAX_NAME: usize = 31;

/// `8-4-4-4-12` lower-case hex of `u`.
pub fn format(u: &Uuid) -> [u8; 36] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 36];
    let mut pos = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            pos += 1;
        }
        if let Some(o) = out.get_mut(pos) {
            *o = HEX[usize::from(b >> 4)];
        }
        if let Some(o) = out.get_mut(pos + 1) {
            *o = HEX[usize::from(b & 15)];
        }
        pos += 2;
    }
    out
}

/// Length of [`serial`].
pub const SERIAL_LEN: usize = 20;

/// The disk serial of a volume of UUID `u`: its first 20 hex digits without
/// dashes (`/sys/block/zvpoolN/serial`; 20 characters is what virtio-blk and
/// QEMU's `serial=` carry, so the same string can be handed to a VM).
pub fn serial(u: &Uuid) -> [u8; SERIAL_LEN] {
    let mut out = [b'0'; SERIAL_LEN];
    let f = format(u);
    for (o, &c) in out.iter_mut().zip(f.iter().filter(|&&c| c != b'-')) {
        *o = c;
    }
    out
}

/// Prefix of a volume disk's WWID (`/sys/block/zvpoolN/wwid`): `uuid.`
/// and the volume's UUID, the form NVMe namespaces with a UUID use.
pub const WWID_PREFIX: &[u8] = b"uuid.";

/// A fixed buffer the hashed name is assembled in.
struct Buf {
    b: [u8; 128],
    len: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        for &c in s {
            if let Some(o) = self.b.get_mut(self.len) {
                *o = c;
                self.len += 1;
            }
        }
    }
}

/// The stable UUID of volume `id` named `name` of the pool `pool`.
pub fn volume_uuid(pool: &Uuid, id: u64, name: &[u8]) -> Uuid {
    let mut buf = Buf {
        b: [0; 128],
        len: 0,
    };
    buf.push(&NAMESPACE);
    buf.push(&format(pool));
    buf.push(b"/");
    let mut digits = [0u8; 20];
    let mut n = id;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.push(digits.get(i..).unwrap_or(&[]));
    buf.push(b"/");
    buf.push(name.get(..MAX_NAME).unwrap_or(name));
    let h = sha1(buf.b.get(..buf.len).unwrap_or(&[]));
    let mut u = [0u8; 16];
    for (o, x) in u.iter_mut().zip(h.iter()) {
        *o = *x;
    }
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// SHA-1 (FIPS 180-4) of a message of at most 119 bytes (two blocks with
/// padding; longer messages are cut), for version 5 UUIDs only.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let data = data.get(..119).unwrap_or(data);
    let mut msg = [0u8; 128];
    for (o, x) in msg.iter_mut().zip(data) {
        *o = *x;
    }
    let len = data.len();
    msg[len] = 0x80;
    let blocks = if len < 56 { 1 } else { 2 };
    let end = blocks * 64;
    let bits = (len as u64) * 8;
    for (i, x) in bits.to_be_bytes().into_iter().enumerate() {
        msg[end - 8 + i] = x;
    }
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    // Indexes below 128 into `msg` and below 80 into `w`: no `chunks_exact`
    // (its size check is a panic path objtool flags in the module).
    for blk in 0..blocks {
        let mut w = [0u32; 80];
        for (i, wi) in w.iter_mut().take(16).enumerate() {
            let j = blk * 64 + i * 4;
            *wi = u32::from_be_bytes([msg[j], msg[j + 1], msg[j + 2], msg[j + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.into_iter().enumerate() {
        for (k, b) in x.to_be_bytes().into_iter().enumerate() {
            out[4 * i + k] = b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| std::format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_test_vectors() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        // 55, 56 and 64 bytes: the padding boundaries.
        assert_eq!(
            hex(&sha1(&[b'a'; 55])),
            "c1c8bbdc22796e28c0e15163d20899b65621d65a"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 56])),
            "c2db330f6083854c99d4b5bfb6e8f29f201be699"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 64])),
            "0098ba824b5c16427bd7a1122a5a442a25ec644d"
        );
    }

    #[test]
    fn format_is_8_4_4_4_12_and_serial_its_start() {
        let u = [
            0x6f, 0x1c, 0x2d, 0x3e, 0xaa, 0xaa, 0x4b, 0xbb, 0x8c, 0xcc, 0x12, 0x34, 0x56, 0x78,
            0x90, 0xab,
        ];
        assert_eq!(&format(&u), b"6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab");
        // The serial: the first 20 hex digits, without the dashes.
        assert_eq!(&serial(&u), b"6f1c2d3eaaaa4bbb8ccc");
    }

    #[test]
    fn volume_uuid_is_v5_and_depends_on_everything() {
        let p = [1u8; 16];
        let mut q = p;
        q[15] = 2;
        let u = volume_uuid(&p, 2, b"vm1");
        assert_eq!(u, volume_uuid(&p, 2, b"vm1"));
        assert_ne!(u, volume_uuid(&q, 2, b"vm1"));
        assert_ne!(u, volume_uuid(&p, 3, b"vm1"));
        assert_ne!(u, volume_uuid(&p, 2, b"vm2"));
        assert_eq!((u[6] >> 4, u[8] >> 6), (5, 2));
        // The longest name: 16 + 36 + 1 + 20 + 1 + 31 = 105 bytes hashed.
        let long = [b'x'; 31];
        assert_ne!(
            volume_uuid(&p, u64::MAX, &long),
            volume_uuid(&p, u64::MAX, &long[..30])
        );
    }
}
