//! Interface names as arpwatch writes them. A Linux interface name is up to 15 bytes that need
//! not be UTF-8 (the kernel refuses only `/`, `:`, whitespace and the names `.` and `..`), while
//! events, logs, metrics and the selection globs work on text. The written form is faithful and
//! reversible:
//!
//! - a backslash is written `\\`;
//! - a byte that is not part of valid UTF-8, and an ASCII control character, is written `\xNN`
//!   (two lower-case hex digits), as Rust's `escape_ascii` does;
//! - everything else is written as it is.
//!
//! So any ordinary name (`eth0`, `bond0.100`, `vethé`) is written unchanged, and two different
//! names are never written alike. [`unescape`] gives the kernel's bytes back.

use std::fmt::Write;

/// The longest name Linux gives an interface, in bytes (IFNAMSIZ less the terminating NUL).
pub const MAX_NAME_BYTES: usize = 15;

/// The written form of the interface name `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// The kernel's bytes of a name written by [`escape`]; `None` when `written` is not such a form
/// (a lone backslash, a `\x` without two hex digits).
pub fn unescape(written: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(written.len());
    let mut rest = written.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'\\' {
            bytes.push(b);
            rest = tail;
            continue;
        }
        match tail {
            [b'\\', tail @ ..] => {
                bytes.push(b'\\');
                rest = tail;
            }
            [b'x', hi, lo, tail @ ..] => {
                bytes.push(hex_digit(*hi)? << 4 | hex_digit(*lo)?);
                rest = tail;
            }
            _ => return None,
        }
    }
    Some(bytes)
}

/// A lower-case hex digit's value, as [`escape`] writes them.
fn hex_digit(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    }
}

/// The kernel's name for the written name `written`, when it is text that a name-based kernel
/// interface (`if_nametoindex`) can be given; `None` when the name is not UTF-8.
pub fn kernel_name(written: &str) -> Option<String> {
    String::from_utf8(unescape(written)?).ok()
}

/// Whether some interface could be written `written`: it is a written form (see [`unescape`]) of
/// at most [`MAX_NAME_BYTES`] bytes.
pub fn could_exist(written: &str) -> bool {
    unescape(written).is_some_and(|bytes| !bytes.is_empty() && bytes.len() <= MAX_NAME_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_written_as_they_are() {
        for name in ["eth0", "bond0.100", "veth1a2b", "kube-ipvs0", "vethé", "br-0_x"] {
            assert_eq!(escape(name.as_bytes()), name);
            assert_eq!(kernel_name(name).as_deref(), Some(name));
        }
    }

    #[test]
    fn bytes_that_are_not_text_are_written_as_hex_and_backslashes_doubled() {
        assert_eq!(escape(b"veth\xff"), r"veth\xff");
        assert_eq!(escape(b"a\xc3"), r"a\xc3", "a UTF-8 sequence cut short");
        assert_eq!(escape(b"\xe9t\xe9"), r"\xe9t\xe9", "Latin-1");
        assert_eq!(escape(b"a\x01b\x7f"), r"a\x01b\x7f", "control characters");
        assert_eq!(escape(br"a\b"), r"a\\b");
        // The ASCII name `veth\xff` is not the name with byte 0xff.
        assert_eq!(escape(br"veth\xff"), r"veth\\xff");
        assert_eq!(kernel_name(r"veth\\xff").as_deref(), Some(r"veth\xff"));
    }

    #[test]
    fn unescape_gives_the_kernels_bytes_back() {
        let names: [&[u8]; 8] =
            [b"eth0", b"veth\xff", b"\xff\xfe", br"a\b", br"x\xff", b"\x01", "é\\".as_bytes(), b""];
        for bytes in names {
            assert_eq!(unescape(&escape(bytes)).as_deref(), Some(bytes), "{bytes:?}");
        }
        assert_eq!(kernel_name(r"veth\xff"), None, "not UTF-8");
        for not_written in [r"a\b", r"a\x", r"a\xf", r"a\xFF", r"a\xzz", "a\\"] {
            assert_eq!(unescape(not_written), None, "{not_written}");
        }
    }

    #[test]
    fn a_written_name_could_exist_when_its_bytes_fit() {
        assert!(could_exist("eth0"));
        assert!(could_exist(r"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"));
        assert!(!could_exist("a-very-long-interface"));
        assert!(!could_exist(r"a\b"));
        assert!(!could_exist(""));
    }
}
