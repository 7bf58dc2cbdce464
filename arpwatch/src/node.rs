//! Who this observer is: the node name every event carries.

/// `NODE_NAME` (set from the downward API in the DaemonSet), else the hostname.
pub fn node_name() -> String {
    if let Some(name) = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()) {
        return name;
    }
    hostname().unwrap_or_else(|| "unknown".to_owned())
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length; the name is NUL-terminated on success.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_is_known() {
        let name = super::hostname().expect("gethostname");
        assert!(!name.is_empty());
    }
}
