// SPDX-License-Identifier: GPL-2.0
//! UUIDs as zvpool shows them (`8-4-4-4-12` lower-case hex, as the kernel
//! prints `status: uuid`) and the stable name-based UUID of a volume
//! (`volume ident`, the udev rule's `/dev/disk/by-id/zvpool-UUID`).
//!
//! The volume UUID is an RFC 9562 version 5 UUID (SHA-1, name-based) in
//! the zvpool namespace [`NAMESPACE`] of the name `POOL-UUID/ID/NAME`: the
//! pool's UUID (on every member's superblock, never changed), the volume's
//! id in the pool's metadata and the volume's name (both persistent). It is
//! the same after every reboot, reassembly in any member order and import
//! under another pool name; nothing is written to the pool. Ids are not
//! reused while a volume holds them, but the kernel gives a new volume the
//! highest id plus one, so a volume deleted and created again with the same
//! name may get the same id: the name in the hash keeps a different volume
//! from inheriting the UUID, the same name gets it back (by design).

/// A UUID's 16 bytes.
pub type Uuid = [u8; 16];

/// The namespace of zvpool volume UUIDs (a random version 4 UUID chosen
/// once; never change it: every volume UUID depends on it).
pub const NAMESPACE: Uuid = [
    0x7a, 0x1c, 0x5e, 0x0d, 0x93, 0x4b, 0x4f, 0x2e, 0xa6, 0x10, 0x3c, 0x8d, 0x55, 0xe2, 0x71, 0x9f,
];

/// `8-4-4-4-12` lower-case hex.
pub fn format(u: &Uuid) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses `8-4-4-4-12` hex (either case).
pub fn parse(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut hex = Vec::with_capacity(32);
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
        } else {
            hex.push((c as char).to_digit(16)? as u8);
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = hex[2 * i] << 4 | hex[2 * i + 1];
    }
    Some(out)
}

/// The version 5 UUID of `name` in namespace `ns`.
pub fn v5(ns: &Uuid, name: &[u8]) -> Uuid {
    let mut data = ns.to_vec();
    data.extend_from_slice(name);
    let h = sha1(&data);
    let mut u = [0u8; 16];
    u.copy_from_slice(&h[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// The stable UUID of volume `id` named `name` of the pool `pool`.
pub fn volume_uuid(pool: &Uuid, id: u64, name: &str) -> Uuid {
    v5(
        &NAMESPACE,
        format!("{}/{id}/{name}", format(pool)).as_bytes(),
    )
}

/// SHA-1 (FIPS 180-4), for version 5 UUIDs only.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for chunk in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
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
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_test_vectors() {
        // FIPS 180 examples, and a message of more than one block.
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
    }

    #[test]
    fn v5_matches_rfc_example() {
        // RFC 9562 appendix A.4: "www.example.com" in the DNS namespace.
        let dns = parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        assert_eq!(
            format(&v5(&dns, b"www.example.com")),
            "2ed6657d-e927-568b-95e1-2665a8aea6a2"
        );
    }

    #[test]
    fn parse_and_format_round_trip() {
        let s = "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab";
        assert_eq!(format(&parse(s).unwrap()), s);
        assert_eq!(parse(&s.to_uppercase()), parse(s));
        for bad in [
            "",
            "6f1c2d3e-aaaa-4bbb-8ccc-1234567890a",
            "6f1c2d3eXaaaa-4bbb-8ccc-1234567890ab",
            "0000-tank",
            "6f1c2d3e-aaaa-4bbb-8ccc-1234567890ag",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn volume_uuid_depends_on_pool_id_and_name() {
        let p = parse("6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab").unwrap();
        let q = parse("6f1c2d3e-aaaa-4bbb-8ccc-1234567890ac").unwrap();
        let u = volume_uuid(&p, 2, "vm1");
        assert_eq!(u, volume_uuid(&p, 2, "vm1"));
        assert_ne!(u, volume_uuid(&q, 2, "vm1"));
        assert_ne!(u, volume_uuid(&p, 3, "vm1"));
        assert_ne!(u, volume_uuid(&p, 2, "vm2"));
        assert_eq!((u[6] >> 4, u[8] >> 6), (5, 2));
    }

    #[test]
    fn volume_uuid_matches_the_kernels() {
        // The kernel computes it with zvcore::volid (sysfs `uuid`, uevent
        // ZVPOOL_UUID): the same value for any pool, id and name.
        let p = parse("6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab").unwrap();
        assert_eq!(zvcore::volid::NAMESPACE, NAMESPACE);
        for (id, name) in [
            (0, "a"),
            (2, "vm1"),
            (7, "v1@s1"),
            (u64::MAX, &*"x".repeat(31)),
        ] {
            assert_eq!(
                zvcore::volid::volume_uuid(&p, id, name.as_bytes()),
                volume_uuid(&p, id, name),
                "{id} {name}"
            );
        }
        assert_eq!(
            std::str::from_utf8(&zvcore::volid::format(&p)).unwrap(),
            format(&p)
        );
    }
}
