//! The JSON lines written straight into a byte buffer: the bytes serde_json makes of the same
//! fields (the `Serialize` impls in the parent module, which the tests hold this writer to), without
//! its per-field machinery. Every event and every `--raw` observation is a line, so this is the
//! output's hot path: numbers by `itoa`, MACs, IPv4 addresses and timestamps from stack buffers,
//! strings escaped only where they need it, and nothing allocated but the buffer's growth.

use std::io::Write;
use std::net::IpAddr;

use super::{arp_op, key, nd_op, FieldSink, Key, Value};
use crate::observation::{ArpOp, MacAddr, Observation};

/// A JSON object being written into `out`: one member per [`FieldSink::field`], closed by
/// [`end`](Self::end).
pub(super) struct Object<'b> {
    out: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Object<'b> {
    pub(super) fn new(out: &'b mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// A member's name: a field's, in one copy.
    fn key(&mut self, key: Key) {
        let member = key.member.as_bytes();
        // The first member has no comma before it.
        self.out.extend_from_slice(if self.first { &member[1..] } else { member });
        self.first = false;
    }

    /// A member's name that is a MAC's text, which has nothing to escape.
    fn mac_key(&mut self, mac: MacAddr) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        plain_string(self.out, mac.text().as_bytes());
        self.out.push(b':');
    }

    pub(super) fn end(self) {
        self.out.push(b'}');
    }
}

impl FieldSink for Object<'_> {
    fn field(&mut self, key: Key, value: Value<'_>) {
        self.key(key);
        value_into(self.out, value);
    }
}

/// The raw line of `obs`: [`super::RawLine::visit`]'s fields written by hand, each member's name
/// with its punctuation one constant, since `--raw` writes a line per frame.
pub(super) fn raw_line(out: &mut Vec<u8>, obs: &Observation) {
    out.extend_from_slice(b"{\"ts\":");
    plain_string(out, obs.ts.rfc3339().as_bytes());
    out.extend_from_slice(b",\"iface\":");
    string(out, &obs.iface);
    out.extend_from_slice(b",\"ifindex\":");
    out.extend_from_slice(itoa::Buffer::new().format(obs.ifindex).as_bytes());
    out.extend_from_slice(b",\"direction\":");
    plain_string(out, obs.direction.as_str().as_bytes());
    out.extend_from_slice(b",\"vlan\":");
    value_into(out, Value::Vlan(obs.vlan.as_slice()));
    out.extend_from_slice(b",\"proto\":");
    plain_string(out, obs.proto().as_str().as_bytes());
    let op = match obs.nd {
        None => arp_op(obs.op),
        Some(_) => nd_op(obs.op),
    };
    out.extend_from_slice(b",\"op\":");
    plain_string(out, op.as_bytes());
    out.extend_from_slice(b",\"eth_src\":");
    mac(out, obs.eth_src);
    out.extend_from_slice(b",\"eth_dst\":");
    mac(out, obs.eth_dst);
    match &obs.nd {
        None => {
            out.extend_from_slice(b",\"sha\":");
            mac(out, obs.sha);
            out.extend_from_slice(b",\"spa\":");
            ip(out, obs.spa);
            out.extend_from_slice(b",\"tha\":");
            mac(out, obs.tha);
            out.extend_from_slice(b",\"tpa\":");
            ip(out, obs.tpa);
        }
        Some(nd) => {
            out.extend_from_slice(b",\"src\":");
            ip(out, nd.src.into());
            out.extend_from_slice(b",\"dst\":");
            ip(out, nd.dst.into());
            out.extend_from_slice(b",\"target\":");
            ip(out, nd.target.into());
            out.extend_from_slice(b",\"lladdr\":");
            match nd.lladdr {
                Some(lladdr) => mac(out, lladdr),
                None => out.extend_from_slice(b"null"),
            }
            if obs.op == ArpOp::Reply {
                out.extend_from_slice(b",\"flags\":");
                value_into(out, Value::NaFlags(nd.flags));
            }
        }
    }
    out.push(b'}');
}

fn value_into(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::U64(v) => out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes()),
        Value::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
        Value::Str(v) => string(out, v),
        Value::Name(v) => plain_string(out, v.as_bytes()),
        Value::Mac(v) => mac(out, v),
        Value::Ip(v) => ip(out, v),
        Value::Time(v) => plain_string(out, v.rfc3339().as_bytes()),
        Value::Macs(v) => list(out, v, |out, m| mac(out, *m)),
        Value::Names(v) => list(out, v, |out, name| string(out, name)),
        Value::Vlan(v) => list(out, v, |out, id| {
            out.extend_from_slice(itoa::Buffer::new().format(*id).as_bytes())
        }),
        Value::MacNames(v) => {
            let mut object = Object::new(out);
            for (m, name) in v {
                object.mac_key(*m);
                string(object.out, name);
            }
            object.end();
        }
        Value::Announcer(v) => {
            let mut object = Object::new(out);
            object.field(key!("node"), Value::Str(&v.node));
            object.field(key!("interfaces"), Value::Names(&v.interfaces));
            object.field(key!("source"), Value::Str(v.source.as_str()));
            object.end();
        }
        Value::NaFlags(v) => {
            let mut object = Object::new(out);
            object.field(key!("router"), Value::Bool(v.router));
            object.field(key!("solicited"), Value::Bool(v.solicited));
            object.field(key!("override"), Value::Bool(v.override_));
            object.end();
        }
    }
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, value);
    }
    out.push(b']');
}

fn mac(out: &mut Vec<u8>, mac: MacAddr) {
    plain_string(out, mac.text().as_bytes());
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    match ip {
        IpAddr::V4(v4) => {
            // Dotted decimal on the stack, then copied once.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        // The standard form (RFC 5952) is the standard library's; a write into a Vec cannot fail.
        IpAddr::V6(v6) => drop(write!(out, "{v6}")),
    }
    out.push(b'"');
}

/// A string with nothing to escape (names, MAC and time text).
fn plain_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

/// A JSON string escaped as serde_json escapes it: `"` and `\`, the short escapes of control
/// characters that have one, `\u00XX` for the others; everything else as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Almost every string (names of kinds, states, interfaces) has nothing to escape.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        return plain_string(out, bytes);
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        for s in ["eth0", "", "a\"b\\c", "é☃ \u{7f}", &every_control, "x\ny\u{1}"] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn addresses_are_written_as_serde_json_writes_them() {
        for addr in
            ["0.0.0.0", "192.0.2.10", "255.255.255.255", "2001:db8::1", "::", "::ffff:1.2.3.4"]
        {
            let addr: IpAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            ip(&mut out, addr);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&addr).unwrap());
        }
    }
}
