//! Memory for a session's buffers: fallible zeroed allocation, and (std, Linux) how much
//! memory this process can still get, so a context too large for the machine is refused
//! before anything is allocated rather than killed part-way through generation.

use alloc::vec::Vec;

/// `n` zeroed values, or `None` where the allocator refuses (the OS gives zeroed pages
/// lazily, as `vec![0; n]` does; no abort on failure).
pub fn zeroed_vec<T: bytemuck::Zeroable>(n: usize) -> Option<Vec<T>> {
    bytemuck::allocation::try_zeroed_slice_box(n)
        .ok()
        .map(|b| b.into_vec())
}

/// Bytes this process can still allocate, the least of: the kernel's estimate of memory
/// available without swapping (`MemAvailable`), the headroom under its cgroup's (v2) memory
/// limit, and under its address-space and data-size limits (`ulimit -v`, `ulimit -d`).
/// `None` where none of these can be read (other systems).
#[cfg(feature = "std")]
pub fn available() -> Option<u64> {
    [mem_available(), cgroup_headroom(), rlimit_headroom()]
        .into_iter()
        .flatten()
        .min()
}

#[cfg(feature = "std")]
fn read(path: &str) -> Option<std::string::String> {
    std::fs::read_to_string(path).ok()
}

/// The number in a `Key:   123 kB` line of /proc/meminfo or /proc/self/status, in bytes.
#[cfg(feature = "std")]
fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(feature = "std")]
fn mem_available() -> Option<u64> {
    kib_field(&read("/proc/meminfo")?, "MemAvailable:")
}

/// `memory.max - memory.current` of this process's cgroup (v2); `None` without a limit.
#[cfg(feature = "std")]
fn cgroup_headroom() -> Option<u64> {
    let cgroup = read("/proc/self/cgroup")?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::format!("/sys/fs/cgroup{}", path.trim_end());
    let max: u64 = read(&std::format!("{dir}/memory.max"))?
        .trim()
        .parse()
        .ok()?;
    let current: u64 = read(&std::format!("{dir}/memory.current"))?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(current))
}

/// Headroom under the soft `RLIMIT_AS` (less `VmSize`) and `RLIMIT_DATA` (less `VmData`),
/// from /proc/self/limits; `None` when both are unlimited.
#[cfg(feature = "std")]
fn rlimit_headroom() -> Option<u64> {
    let limits = read("/proc/self/limits")?;
    let status = read("/proc/self/status")?;
    let soft = |name: &str| -> Option<u64> {
        let line = limits.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let headroom = |limit: Option<u64>, used: &str| {
        limit.map(|l| l.saturating_sub(kib_field(&status, used).unwrap_or(0)))
    };
    [
        headroom(soft("Max address space"), "VmSize:"),
        headroom(soft("Max data size"), "VmData:"),
    ]
    .into_iter()
    .flatten()
    .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_impossible_allocation_is_none_not_an_abort() {
        assert!(zeroed_vec::<f32>(usize::MAX / 4).is_none());
        assert!(zeroed_vec::<f32>(1 << 60).is_none());
        assert_eq!(zeroed_vec::<f32>(3), Some(alloc::vec![0.0; 3]));
    }

    #[cfg(all(feature = "std", target_os = "linux"))]
    #[test]
    fn available_memory_is_read_on_linux() {
        let bytes = available().expect("MemAvailable on Linux");
        assert!(bytes > 1 << 20, "{bytes}");
    }
}
