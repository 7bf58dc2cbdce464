//! Pre-flight checks that turn the kernel's bare EPERM and EINVAL into a sentence an operator can
//! act on: which capability is missing, or that the kernel is too old for BPF ring buffers.

use anyhow::{bail, Context, Result};

/// Capability bit numbers from linux/capability.h.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities arpwatch needs, and why.
pub const REQUIRED: [(u32, &str, &str); 3] = [
    (CAP_BPF, "CAP_BPF", "to load BPF programs and maps"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN", "to attach programs to interfaces"),
    (CAP_PERFMON, "CAP_PERFMON", "for the packet pointer arithmetic the verifier checks"),
];

/// Fails with a sentence naming every required capability the process lacks.
pub fn check_capabilities() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("could not read /proc/self/status")?;
    let effective = parse_cap_eff(&status).context("/proc/self/status has no CapEff line")?;
    let missing = missing_capabilities(effective);
    if !missing.is_empty() {
        let list: Vec<String> =
            missing.iter().map(|(name, why)| format!("{name} ({why})")).collect();
        bail!(
            "missing {}: run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON",
            list.join(", ")
        );
    }
    Ok(())
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The required capabilities missing from `effective`. CAP_SYS_ADMIN still stands in for CAP_BPF
/// and CAP_PERFMON, as the kernel allows for compatibility.
fn missing_capabilities(effective: u64) -> Vec<(&'static str, &'static str)> {
    let has = |bit: u32| effective & (1u64 << bit) != 0;
    REQUIRED
        .iter()
        .filter(|(bit, _, _)| {
            let via_sys_admin = (*bit == CAP_BPF || *bit == CAP_PERFMON) && has(CAP_SYS_ADMIN);
            !has(*bit) && !via_sys_admin
        })
        .map(|(_, name, why)| (*name, *why))
        .collect()
}

/// BPF ring buffers arrived in Linux 5.8.
pub fn check_kernel_has_ring_buffers() -> Result<()> {
    let release = kernel_release()?;
    match parse_major_minor(&release) {
        Some(version) if version < (5, 8) => {
            bail!(
                "this kernel ({release}) has no BPF ring buffer: arpwatch needs Linux 5.8 or later"
            )
        }
        _ => Ok(()),
    }
}

/// Whether the running kernel is at least `major.minor` (unknown versions count as new enough).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    kernel_release().ok().and_then(|r| parse_major_minor(&r)).is_none_or(|v| v >= (major, minor))
}

fn kernel_release() -> Result<String> {
    // SAFETY: `uname` fills the zeroed struct with NUL-terminated strings.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        bail!("uname failed: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates `release`.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

fn parse_major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_exactly_the_missing_capabilities() {
        let all = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON);
        assert!(missing_capabilities(all).is_empty());
        let names = |eff| missing_capabilities(eff).iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(names(all & !(1 << CAP_PERFMON)), ["CAP_PERFMON"]);
        assert_eq!(names(1 << CAP_NET_ADMIN), ["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(names((1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN)), Vec::<&str>::new());
        assert_eq!(names(0), ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]);
    }

    #[test]
    fn reads_effective_set_and_kernel_versions() {
        let status = "Name:\tarpwatch\nCapInh:\t0000000000000000\nCapEff:\t000001c000001000\n";
        assert_eq!(parse_cap_eff(status), Some(0x1c0_0000_1000));
        assert_eq!(parse_major_minor("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_major_minor("5.4.0-150-generic"), Some((5, 4)));
        assert!(parse_major_minor("5.4.0").unwrap() < (5, 8));
    }
}
