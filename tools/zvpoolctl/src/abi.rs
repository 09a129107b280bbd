// SPDX-License-Identifier: GPL-2.0
//! Parsing of the read-only attributes of the configfs ABI
//! (Documentation/configfs-abi.md). Unknown keys and words are ignored, as the
//! ABI requires; malformed values of known keys are errors (never panics).

/// `key value` lines (`status`, `usage`).
#[derive(Debug, Default, Clone)]
pub struct KeyValues(Vec<(String, String)>);

impl KeyValues {
    pub fn parse(text: &str) -> Self {
        KeyValues(
            text.lines()
                .filter_map(|l| {
                    let l = l.trim();
                    if l.is_empty() {
                        return None;
                    }
                    let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
                    Some((k.to_string(), v.trim().to_string()))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A decimal integer value; `Ok(None)` if the key is absent.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("malformed value {v:?} for {key}")),
        }
    }
}

/// One line of a pool's `members`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Member {
    pub index: u64,
    pub path: String,
    pub kind: String,
    pub zones: Option<u64>,
    pub zone_bytes: Option<u64>,
    pub cap_bytes: Option<u64>,
    pub max_open: Option<u64>,
    pub max_active: Option<u64>,
    pub free_zones: Option<u64>,
    /// Live data on the member (kernels with online member add).
    pub used_bytes: Option<u64>,
    pub read_errors: Option<u64>,
    pub write_errors: Option<u64>,
    /// Failed metadata I/O (kernels with member health).
    pub meta_errors: Option<u64>,
    /// `fast` or `slow` (kernels with tiering; empty before).
    pub class: String,
    pub state: String,
}

/// `<index> <path> <kind> key=value ...`
pub fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = || format!("malformed members line {line:?}");
        let mut words = line.split_whitespace();
        let index = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let path = words.next().ok_or_else(bad)?.to_string();
        let kind = words.next().unwrap_or("").to_string();
        let mut m = Member {
            index,
            path,
            kind,
            ..Member::default()
        };
        for w in words {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            let num = || v.parse::<u64>().map(Some).map_err(|_| bad());
            match k {
                "zones" => m.zones = num()?,
                "zone_bytes" => m.zone_bytes = num()?,
                "cap_bytes" => m.cap_bytes = num()?,
                "max_open" => m.max_open = num()?,
                "max_active" => m.max_active = num()?,
                "free_zones" => m.free_zones = num()?,
                "used_bytes" => m.used_bytes = num()?,
                "read_errors" => m.read_errors = num()?,
                "write_errors" => m.write_errors = num()?,
                "meta_errors" => m.meta_errors = num()?,
                "state" => m.state = v.to_string(),
                "class" => m.class = v.to_string(),
                _ => {}
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// One line of a pool's `volumes`.
///
/// The keys added with snapshots (`kind`, `origin`, `exclusive_bytes`,
/// `shared_bytes`) are optional: a kernel without snapshots prints none of
/// them, and then every volume is a plain `volume` without origin whose
/// mapped blocks are all its own (`shared` 0, `exclusive` = `mapped`, as
/// `mapped_bytes = exclusive_bytes + shared_bytes` holds).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeEntry {
    pub id: u64,
    pub name: String,
    pub size: Option<u64>,
    pub mapped: Option<u64>,
    /// `volume`, `snapshot` or `clone` (or a word a newer kernel added).
    pub kind: String,
    /// The origin's name (the volume of a snapshot, the snapshot of a clone);
    /// `None` for `-` or when the kernel does not say.
    pub origin: Option<String>,
    pub exclusive: Option<u64>,
    pub shared: Option<u64>,
    /// Where its data is placed (`migrate`): `any`, `fast`, `slow` or
    /// member indexes joined by commas; `None` from kernels without
    /// placement policies.
    pub placement: Option<String>,
    /// Copies of each block: 2 for a mirrored volume; `None` from kernels
    /// without mirrored volumes.
    pub copies: Option<u64>,
}

pub const KIND_VOLUME: &str = "volume";
pub const KIND_SNAPSHOT: &str = "snapshot";
pub const KIND_CLONE: &str = "clone";

/// An origin value: `-` means none.
pub fn parse_origin(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v != "-").then(|| v.to_string())
}

/// `<id> <name> size_bytes=<n> mapped_bytes=<n> [kind=<k> origin=<name|->
/// exclusive_bytes=<n> shared_bytes=<n>]`, any order, unknown keys ignored.
/// Lines starting with `#` are comments (the kernel's trailer when the page
/// is full, see [`unlisted_volumes`]).
pub fn parse_volumes(text: &str) -> Result<Vec<VolumeEntry>, String> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let bad = || format!("malformed volumes line {line:?}");
        let mut words = line.split_whitespace();
        let id = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let name = words.next().ok_or_else(bad)?.to_string();
        let mut v = VolumeEntry {
            id,
            name,
            size: None,
            mapped: None,
            kind: KIND_VOLUME.to_string(),
            origin: None,
            exclusive: None,
            shared: None,
            placement: None,
            copies: None,
        };
        for w in words {
            let Some((k, val)) = w.split_once('=') else {
                continue;
            };
            let num = || val.parse::<u64>().map(Some).map_err(|_| bad());
            match k {
                "size_bytes" => v.size = num()?,
                "mapped_bytes" => v.mapped = num()?,
                "exclusive_bytes" => v.exclusive = num()?,
                "shared_bytes" => v.shared = num()?,
                "kind" if !val.is_empty() => v.kind = val.to_string(),
                "kind" => return Err(bad()),
                "origin" => v.origin = parse_origin(val),
                "placement" if !val.is_empty() => v.placement = Some(val.to_string()),
                "copies" => v.copies = num()?,
                _ => {}
            }
        }
        v.shared = v.shared.or(Some(0));
        let shared = v.shared.unwrap_or(0);
        v.exclusive = v
            .exclusive
            .or_else(|| v.mapped.map(|m| m.saturating_sub(shared)));
        out.push(v);
    }
    Ok(out)
}

/// The number of volumes the `volumes` page could not hold: its trailer
/// `# <n> more volumes not listed` (0 without one).
pub fn unlisted_volumes(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('#'))
        .filter(|l| l.contains("more volumes not listed"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The root's `features`: the words of the `features` line.
pub fn parse_features(text: &str) -> Vec<String> {
    KeyValues::parse(text)
        .get("features")
        .map(|w| w.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `<index> <path>` lines of `devices`.
pub fn parse_devices(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .map(|(_, p)| p.trim().to_string())
        .collect()
}

/// A volume's `dev`: `<name> <major>:<minor>`, or empty when disabled.
pub fn parse_dev(text: &str) -> Option<(String, String)> {
    let mut w = text.split_whitespace();
    let name = w.next()?.to_string();
    let devt = w.next().unwrap_or("").to_string();
    Some((name, devt))
}

/// `enable` is `1` or `0`.
pub fn parse_bool(text: &str) -> bool {
    text.trim() == "1"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let kv = KeyValues::parse(
            "state active\nused_bytes 4096\nnew_key some words\n\nwrite_amplification 1.250\n",
        );
        assert_eq!(kv.get("state"), Some("active"));
        assert_eq!(kv.u64("used_bytes"), Ok(Some(4096)));
        assert_eq!(kv.u64("absent"), Ok(None));
        assert_eq!(kv.get("new_key"), Some("some words"));
        assert!(kv.u64("state").is_err());
    }

    #[test]
    fn members() {
        let m = parse_members(
            "0 /dev/nvme0n1 zns zones=64 zone_bytes=67108864 cap_bytes=65011712 max_open=14 \
             max_active=28 free_zones=60 used_bytes=8192 read_errors=0 write_errors=2 state=ok future=7\n\
             1 /dev/sdb smr class=slow state=missing\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].path, "/dev/nvme0n1");
        assert_eq!(m[0].zones, Some(64));
        assert_eq!(m[0].write_errors, Some(2));
        assert_eq!(m[0].used_bytes, Some(8192));
        assert_eq!(m[1].used_bytes, None);
        assert_eq!(m[1].kind, "smr");
        assert_eq!(m[1].state, "missing");
        assert_eq!((m[0].class.as_str(), m[1].class.as_str()), ("", "slow"));
        assert_eq!(m[1].zones, None);
        assert!(parse_members("x /dev/a zns").is_err());
        assert!(parse_members("0 /dev/a zns zones=lots").is_err());
    }

    #[test]
    fn volumes_devices_dev() {
        let v =
            parse_volumes("1 vm1 size_bytes=4096 mapped_bytes=0\n2 vm2 size_bytes=8192\n").unwrap();
        assert_eq!(v[1].name, "vm2");
        assert_eq!(v[1].size, Some(8192));
        assert_eq!(v[1].mapped, None);
        assert_eq!(v[1].exclusive, None);
        assert!(parse_volumes("one vm1").is_err());
        assert_eq!(
            parse_devices("0 /dev/a\n1 /dev/b\n"),
            vec!["/dev/a", "/dev/b"]
        );
        assert_eq!(
            parse_dev("zvpool0 252:0\n"),
            Some(("zvpool0".to_string(), "252:0".to_string()))
        );
        assert_eq!(parse_dev("\n"), None);
        assert!(parse_bool("1\n"));
        assert!(!parse_bool("0\n"));
    }

    #[test]
    fn volumes_new_format() {
        let v = parse_volumes(
            "1 vm1 size_bytes=8192 mapped_bytes=8192 kind=volume origin=- exclusive_bytes=0 shared_bytes=8192\n\
             2 vm1@s1 size_bytes=8192 mapped_bytes=8192 kind=snapshot origin=vm1 exclusive_bytes=4096 \
             shared_bytes=4096 future=x\n\
             3 c1 shared_bytes=4096 origin=vm1@s1 kind=clone size_bytes=4096 mapped_bytes=4096 exclusive_bytes=0\n",
        )
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            VolumeEntry {
                id: 1,
                name: "vm1".into(),
                size: Some(8192),
                mapped: Some(8192),
                kind: "volume".into(),
                origin: None,
                exclusive: Some(0),
                shared: Some(8192),
                placement: None,
                copies: None,
            }
        );
        assert_eq!(
            (v[1].kind.as_str(), v[1].origin.as_deref()),
            ("snapshot", Some("vm1"))
        );
        assert_eq!((v[1].exclusive, v[1].shared), (Some(4096), Some(4096)));
        // Keys in any order.
        assert_eq!(
            (v[2].kind.as_str(), v[2].origin.as_deref(), v[2].size),
            ("clone", Some("vm1@s1"), Some(4096))
        );
        assert!(parse_volumes("1 a kind=").is_err());
        let placed =
            parse_volumes("1 a placement=0,2\n2 b placement=slow\n3 c placement=").unwrap();
        assert_eq!(placed[0].placement.as_deref(), Some("0,2"));
        assert_eq!(placed[1].placement.as_deref(), Some("slow"));
        assert_eq!(placed[2].placement, None);
        let full = "1 a size_bytes=4096\n# 3 more volumes not listed\n";
        assert_eq!(parse_volumes(full).unwrap().len(), 1);
        assert_eq!(unlisted_volumes(full), 3);
        assert_eq!(unlisted_volumes("1 a\n"), 0);
        assert!(parse_volumes("1 a exclusive_bytes=-1").is_err());
        assert!(parse_volumes("1 a shared_bytes=x").is_err());
    }

    #[test]
    fn volumes_old_format_defaults() {
        // A kernel without snapshots: plain volumes, nothing shared, all
        // mapped blocks their own.
        let v = parse_volumes("7 db size_bytes=4096 mapped_bytes=4096\n8 x\n").unwrap();
        assert_eq!(
            v[0],
            VolumeEntry {
                id: 7,
                name: "db".into(),
                size: Some(4096),
                mapped: Some(4096),
                kind: "volume".into(),
                origin: None,
                exclusive: Some(4096),
                shared: Some(0),
                placement: None,
                copies: None,
            }
        );
        assert_eq!(
            (v[1].mapped, v[1].exclusive, v[1].shared),
            (None, None, Some(0))
        );
        // Partial: exclusive follows from mapped - shared.
        let v = parse_volumes("1 a mapped_bytes=12288 shared_bytes=4096").unwrap();
        assert_eq!(v[0].exclusive, Some(8192));
    }

    #[test]
    fn features() {
        assert_eq!(
            parse_features("format_version 2\nfeatures zoned-members thin-volumes snapshots\n"),
            vec!["zoned-members", "thin-volumes", "snapshots"]
        );
        assert!(parse_features("format_version 1\n").is_empty());
        assert_eq!(parse_origin(" - "), None);
        assert_eq!(parse_origin("vm1@s1\n").as_deref(), Some("vm1@s1"));
    }
}
