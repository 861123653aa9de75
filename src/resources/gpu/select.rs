//! Which GPUs belong to this pod: `--gpu-devices`, else the container's
//! `NVIDIA_VISIBLE_DEVICES`, else every GPU NVML sees.

/// One entry of a device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Index(u32),
    /// A GPU or MIG UUID (`GPU-...`, `MIG-...`), compared case-insensitively.
    Uuid(String),
}

/// The devices to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    /// `NVIDIA_VISIBLE_DEVICES=none|void`: the container was given no GPU.
    Nothing,
    Only {
        selectors: Vec<Selector>,
        /// The list came from `NVIDIA_VISIBLE_DEVICES`. The NVIDIA container
        /// runtime already hides other GPUs and renumbers the rest from 0, so
        /// the list's host indices only mean something when NVML sees more
        /// devices than the list names (a privileged container).
        from_runtime: bool,
    },
}

/// Where the selection came from, for the start-up log line.
pub const SOURCE_FLAG: &str = "--gpu-devices";
pub const SOURCE_ENV: &str = "NVIDIA_VISIBLE_DEVICES";
pub const SOURCE_DEFAULT: &str = "all devices";

/// Parses `--gpu-devices` (indices or UUIDs).
pub fn parse_flag(entries: &[String]) -> Result<Selection, String> {
    let selectors = entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(parse_selector)
        .collect::<Result<Vec<_>, _>>()?;
    if selectors.is_empty() {
        return Ok(Selection::All);
    }
    Ok(Selection::Only {
        selectors,
        from_runtime: false,
    })
}

/// Reads the `NVIDIA_VISIBLE_DEVICES` value (container toolkit syntax:
/// `all`, `none`, `void`, empty, or a comma list of indices and UUIDs).
pub fn parse_visible_devices(value: Option<&str>) -> Selection {
    let Some(value) = value.map(str::trim) else {
        return Selection::All;
    };
    match value {
        "" | "all" => Selection::All,
        "none" | "void" => Selection::Nothing,
        list => {
            let selectors: Vec<Selector> = list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .filter_map(|e| parse_selector(e).ok())
                .collect();
            if selectors.is_empty() {
                Selection::All
            } else {
                Selection::Only {
                    selectors,
                    from_runtime: true,
                }
            }
        }
    }
}

fn parse_selector(entry: &str) -> Result<Selector, String> {
    if let Ok(index) = entry.parse::<u32>() {
        return Ok(Selector::Index(index));
    }
    let upper = entry.to_ascii_uppercase();
    if upper.starts_with("GPU-") || upper.starts_with("MIG-") {
        return Ok(Selector::Uuid(entry.to_owned()));
    }
    Err(format!(
        "`{entry}` is neither a GPU index nor a UUID (GPU-... or MIG-...)"
    ))
}

impl Selection {
    /// Is the device with NVML `index` and `uuid` selected, given that NVML
    /// sees `visible` devices in all?
    pub fn includes(&self, index: u32, uuid: Option<&str>, visible: u32) -> bool {
        match self {
            Selection::All => true,
            Selection::Nothing => false,
            Selection::Only {
                selectors,
                from_runtime,
            } => {
                let runtime_filtered = *from_runtime && visible as usize <= selectors.len();
                selectors.iter().any(|s| match s {
                    Selector::Index(i) => runtime_filtered || *i == index,
                    Selector::Uuid(u) => uuid.is_some_and(|have| have.eq_ignore_ascii_case(u)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_takes_indices_and_uuids() {
        let selection = parse_flag(&["1".into(), "GPU-abc".into()]).unwrap();
        assert!(selection.includes(1, Some("GPU-zzz"), 4));
        assert!(selection.includes(3, Some("gpu-ABC"), 4));
        assert!(!selection.includes(0, Some("GPU-zzz"), 4));
        assert!(parse_flag(&["card0".into()]).is_err());
        assert_eq!(parse_flag(&[]).unwrap(), Selection::All);
    }

    #[test]
    fn visible_devices_follow_the_container_toolkit() {
        assert_eq!(parse_visible_devices(None), Selection::All);
        assert_eq!(parse_visible_devices(Some("all")), Selection::All);
        assert_eq!(parse_visible_devices(Some("void")), Selection::Nothing);
        // The runtime already gave this container only GPU 2, renumbered as 0.
        let one = parse_visible_devices(Some("2"));
        assert!(one.includes(0, Some("GPU-x"), 1));
        // A privileged container sees all 4: host index 2 is NVML index 2.
        assert!(!one.includes(0, Some("GPU-x"), 4));
        assert!(one.includes(2, Some("GPU-x"), 4));
        let by_uuid = parse_visible_devices(Some("GPU-a,GPU-b"));
        assert!(by_uuid.includes(0, Some("GPU-b"), 4));
        assert!(!by_uuid.includes(0, Some("GPU-c"), 4));
    }
}
