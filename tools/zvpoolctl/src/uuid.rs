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

/// The namespace of zvpool volume UUIDs (the core's: the kernel computes
/// the same UUIDs, `zvcore::volid`).
pub use zvcore::volid::NAMESPACE;

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

/// The version 5 UUID of `name` in namespace `ns` (names of up to 103
/// bytes: the core's SHA-1 takes 119, enough for every zvpool name).
pub fn v5(ns: &Uuid, name: &[u8]) -> Uuid {
    let mut data = ns.to_vec();
    data.extend_from_slice(name);
    let h = zvcore::volid::sha1(&data);
    let mut u = [0u8; 16];
    u.copy_from_slice(&h[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// The stable UUID of volume `id` named `name` of the pool `pool`: the
/// kernel's (sysfs `uuid`, uevent `ZVPOOL_UUID`), one implementation.
pub fn volume_uuid(pool: &Uuid, id: u64, name: &str) -> Uuid {
    zvcore::volid::volume_uuid(pool, id, name.as_bytes())
}

/// The disk serial of a volume of UUID `u` (`/sys/block/zvpoolN/serial`,
/// the NVMe-oF subsystem's serial): the kernel's function.
pub fn serial(u: &Uuid) -> String {
    String::from_utf8_lossy(&zvcore::volid::serial(u)).into_owned()
}

/// The NVMe namespace globally unique identifier (NGUID) a volume of UUID
/// `u` is exported with (`volume export`): the UUID's 16 bytes in the same
/// order, as 32 lower-case hex digits (what nvmet's `device_nguid` takes).
/// Initiators thus see NGUID and UUID as the same 128-bit value, stable
/// as the UUID is (`/sys/block/nvmeXnY/nguid` prints it `8-4-4-4-12`,
/// equal to `/sys/block/nvmeXnY/uuid`).
pub fn nguid(u: &Uuid) -> String {
    u.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn volume_uuid_is_v5_of_pool_id_and_name() {
        // What the docs say it is (zvpoolctl.md): the version 5 UUID of
        // `POOL-UUID/ID/NAME` in the zvpool namespace.
        let p = parse("6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab").unwrap();
        for (id, name) in [
            (0, "a"),
            (2, "vm1"),
            (7, "v1@s1"),
            (u64::MAX, &*"x".repeat(31)),
        ] {
            assert_eq!(
                v5(&NAMESPACE, format!("{}/{id}/{name}", format(&p)).as_bytes()),
                volume_uuid(&p, id, name),
                "{id} {name}"
            );
        }
        assert_eq!(
            std::str::from_utf8(&zvcore::volid::format(&p)).unwrap(),
            format(&p)
        );
    }

    #[test]
    fn nguid_is_the_uuid_bytes_and_serial_the_kernels() {
        let u = parse("6f1c2d3e-aaaa-4bbb-8ccc-1234567890ab").unwrap();
        assert_eq!(nguid(&u), "6f1c2d3eaaaa4bbb8ccc1234567890ab");
        assert_eq!(serial(&u), "6f1c2d3eaaaa4bbb8ccc");
    }
}
