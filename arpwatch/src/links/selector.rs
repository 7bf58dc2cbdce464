//! Which interfaces to watch, from `--iface` (names and globs), `--exclude` (globs) and `--all`.
//!
//! Rules:
//! - an interface is selected when it is included and no `--exclude` glob matches its name:
//!   `--exclude` always wins, even over an exact `--iface` name;
//! - included means: some `--iface` value matches its name, or `--all` is given and it is not the
//!   loopback device. `--all` with `--iface` is their union, so `--all --iface lo` adds loopback;
//! - globs are shell globs (`*`, `?`, `[abc]`, `[!abc]`, `[a-z]`), matched against the whole name,
//!   case-sensitively like the kernel's names; a value without `*`, `?` or `[` is an exact name;
//! - names and globs are matched against the name as arpwatch writes it
//!   ([`arpwatch_core::ifname`]): a byte that is not UTF-8 is `\xNN` and a backslash `\\`, so
//!   `--iface 'veth\xff'` selects the interface whose name is `veth` and the byte 0xff, and
//!   `--exclude 'veth\x*'` every name with such a byte after `veth`.
//!
//! Globs use the `glob` crate (rust-lang, no dependencies): it rejects malformed patterns such as
//! an unclosed `[`, which libc's fnmatch would quietly treat as literal text, and it needs no regex
//! engine the way globset does.

use arpwatch_core::ifname::{self, MAX_NAME_BYTES};
use glob::{MatchOptions, Pattern};

use super::LinkInfo;
use crate::UsageError;

/// Interface names contain no '/', so path rules do not apply; case matters as it does in the
/// kernel.
const NAME_MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// The operator's choice of interfaces.
#[derive(Clone, Debug)]
pub struct IfaceSelector {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    all: bool,
}

impl IfaceSelector {
    /// Builds the selector from the `--iface` values, the `--exclude` values and `--all`. An
    /// empty value, a malformed glob, an exact name longer than any interface name, or neither
    /// `--iface` nor `--all` is a usage error naming the flag and the value.
    pub fn new(
        ifaces: &[String],
        excludes: &[String],
        all: bool,
    ) -> Result<IfaceSelector, UsageError> {
        if ifaces.is_empty() && !all {
            return Err(UsageError(
                "watch needs --iface NAME_OR_GLOB or --all to know which interfaces to observe"
                    .into(),
            ));
        }
        let include = ifaces.iter().map(|value| parse("iface", value)).collect::<Result<_, _>>()?;
        let exclude =
            excludes.iter().map(|value| parse("exclude", value)).collect::<Result<_, _>>()?;
        Ok(IfaceSelector { include, exclude, all })
    }

    /// Whether `link` is to be watched.
    pub fn selects(&self, link: &LinkInfo) -> bool {
        let matches =
            |patterns: &[Pattern]| patterns.iter().any(|p| p.matches_with(&link.name, NAME_MATCH));
        let included = (self.all && !link.loopback) || matches(&self.include);
        included && !matches(&self.exclude)
    }

    /// The `--iface` values that are exact names rather than globs, in the order given: unlike a
    /// glob, which may match interfaces that appear later, a missing exact name is likely a typo.
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.include.iter().map(Pattern::as_str).filter(|value| is_exact(value))
    }
}

fn is_exact(value: &str) -> bool {
    !value.contains(['*', '?', '['])
}

fn parse(flag: &str, value: &str) -> Result<Pattern, UsageError> {
    if value.is_empty() {
        return Err(UsageError(format!(
            "--{flag} needs an interface name or glob, not an empty value"
        )));
    }
    if is_exact(value) && !ifname::could_exist(value) {
        return Err(UsageError(format!(
            "--{flag} {value:?} can never match: interface names are at most {MAX_NAME_BYTES} \
             bytes long, written with \\xNN for a byte that is not UTF-8 and \\\\ for a backslash"
        )));
    }
    Pattern::new(value)
        .map_err(|err| UsageError(format!("--{flag} {value:?} is not a valid glob: {}", err.msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(ifaces: &[&str], excludes: &[&str], all: bool) -> IfaceSelector {
        let owned = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        IfaceSelector::new(&owned(ifaces), &owned(excludes), all).unwrap()
    }

    fn usage_error(ifaces: &[&str], excludes: &[&str], all: bool) -> String {
        let owned = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        IfaceSelector::new(&owned(ifaces), &owned(excludes), all).unwrap_err().0
    }

    fn link(name: &str) -> LinkInfo {
        LinkInfo { ifindex: 7, name: name.into(), mac: None, up: true, loopback: false }
    }

    fn loopback(name: &str) -> LinkInfo {
        LinkInfo { loopback: true, ..link(name) }
    }

    fn selected<'a>(selector: &IfaceSelector, names: &[&'a str]) -> Vec<&'a str> {
        names.iter().copied().filter(|name| selector.selects(&link(name))).collect()
    }

    const NAMES: &[&str] =
        &["eth0", "eth1", "eth10", "enp3s0", "bond0", "bond0.100", "bond0.200", "veth1a2b", "lo"];

    #[test]
    fn exact_names_match_only_themselves() {
        let s = selector(&["eth1"], &[], false);
        assert_eq!(selected(&s, NAMES), ["eth1"]);
        assert_eq!(s.exact_names().collect::<Vec<_>>(), ["eth1"]);
    }

    #[test]
    fn globs_match_whole_names() {
        assert_eq!(selected(&selector(&["eth*"], &[], false), NAMES), ["eth0", "eth1", "eth10"]);
        assert_eq!(selected(&selector(&["en*"], &[], false), NAMES), ["enp3s0"]);
        assert_eq!(
            selected(&selector(&["bond0.*"], &[], false), NAMES),
            ["bond0.100", "bond0.200"]
        );
        assert_eq!(selected(&selector(&["eth?"], &[], false), NAMES), ["eth0", "eth1"]);
        assert_eq!(selected(&selector(&["eth[!0]"], &[], false), NAMES), ["eth1"]);
        // A glob is anchored at both ends: "th*" is not a substring search.
        assert!(selected(&selector(&["th*"], &[], false), NAMES).is_empty());
        assert!(selected(&selector(&["ETH*"], &[], false), NAMES).is_empty(), "case matters");
    }

    #[test]
    fn several_ifaces_are_a_union() {
        let s = selector(&["eth0", "bond0.*"], &[], false);
        assert_eq!(selected(&s, NAMES), ["eth0", "bond0.100", "bond0.200"]);
        assert_eq!(s.exact_names().collect::<Vec<_>>(), ["eth0"]);
    }

    #[test]
    fn exclude_wins_over_iface_and_all() {
        assert_eq!(selected(&selector(&["eth*"], &["eth1*"], false), NAMES), ["eth0"]);
        assert!(selected(&selector(&["eth0"], &["eth*"], false), NAMES).is_empty());
        let all_but_veths = selector(&[], &["veth*", "bond*"], true);
        assert_eq!(selected(&all_but_veths, NAMES), ["eth0", "eth1", "eth10", "enp3s0", "lo"]);
    }

    #[test]
    fn all_is_every_interface_but_loopback_whatever_its_name() {
        let all = selector(&[], &[], true);
        assert!(all.selects(&link("eth0")));
        assert!(all.selects(&link("lo")), "a non-loopback link may be called lo");
        assert!(!all.selects(&loopback("lo")));
        assert!(!all.selects(&loopback("renamed-lo")), "loopback can be renamed");
        assert_eq!(all.exact_names().count(), 0);
    }

    #[test]
    fn all_with_iface_is_their_union() {
        let s = selector(&["lo"], &[], true);
        assert!(s.selects(&loopback("lo")), "asked for by name");
        assert!(s.selects(&link("eth0")));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_flag_and_value() {
        assert_eq!(
            usage_error(&[""], &[], false),
            "--iface needs an interface name or glob, not an empty value"
        );
        assert_eq!(
            usage_error(&["eth0"], &[""], false),
            "--exclude needs an interface name or glob, not an empty value"
        );
        let unclosed = usage_error(&["eth[0"], &[], false);
        assert!(unclosed.starts_with("--iface \"eth[0\" is not a valid glob: "), "{unclosed}");
        let unclosed = usage_error(&[], &["veth[a-"], true);
        assert!(unclosed.starts_with("--exclude \"veth[a-\" is not a valid glob: "), "{unclosed}");
        assert_eq!(
            usage_error(&["a-very-long-interface"], &[], false),
            "--iface \"a-very-long-interface\" can never match: interface names are at most 15 \
             bytes long, written with \\xNN for a byte that is not UTF-8 and \\\\ for a backslash"
        );
        assert!(usage_error(&[r"a\b"], &[], false).starts_with("--iface \"a\\\\b\" can never"));
        assert_eq!(
            usage_error(&[], &[], false),
            "watch needs --iface NAME_OR_GLOB or --all to know which interfaces to observe"
        );
    }

    #[test]
    fn names_that_are_not_text_are_matched_as_written() {
        let weird = link(r"veth\xff");
        assert!(selector(&[r"veth\xff"], &[], false).selects(&weird), "an exact name");
        assert!(selector(&["veth*"], &[], false).selects(&weird));
        assert!(!selector(&[], &[r"veth\x*"], true).selects(&weird), "excluded by a glob");
        assert!(selector(&[], &[], true).selects(&weird), "--all");
        let fifteen = r"\xff".repeat(15);
        assert!(
            selector(&[&fifteen], &[], false).selects(&link(&fifteen)),
            "15 bytes, written long"
        );
    }

    #[test]
    fn long_globs_are_accepted() {
        // A glob longer than 15 bytes can still match a short name.
        assert!(selector(&["[ab][ab][ab][ab]0"], &[], false).selects(&link("abba0")));
    }
}
