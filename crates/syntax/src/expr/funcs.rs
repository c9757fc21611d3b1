//! The building blocks behind ap_expr's functions and operators, each a
//! port of the APR/httpd routine named in its comment. All work on bytes
//! (C strings) and stop at a NUL where the C code would.

use std::net::{IpAddr, Ipv6Addr};

use md5::Md5;
use sha1::{Digest, Sha1};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// A C string view: everything up to the first NUL.
fn c_bytes(s: &str) -> &[u8] {
    let b = s.as_bytes();
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `c2x`: `prefix` then two lower-case hex digits.
fn push_hex(out: &mut Vec<u8>, prefix: u8, c: u8) {
    out.push(prefix);
    out.push(HEX_LOWER[usize::from(c >> 4)]);
    out.push(HEX_LOWER[usize::from(c & 0xf)]);
}

fn hex_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        s.push(char::from(HEX_LOWER[usize::from(b & 0xf)]));
    }
    s
}

/// `escape()`: `ap_escape_uri` = `ap_os_escape_path(p, s, 1)`: every byte
/// outside the `T_OS_ESCAPE_PATH`-safe set becomes `%xx` (lower-case hex).
pub(crate) fn escape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    for &c in c_bytes(s) {
        if c.is_ascii_alphanumeric() || b"$-_.+!*'(),:;@&=/~".contains(&c) {
            out.push(c);
        } else {
            push_hex(&mut out, b'%', c);
        }
    }
    lossy(&out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `unescape()`: `ap_unescape_url_keep2f(s, 0)`: decodes `%xx` but keeps
/// `%2F` as it is; a bad escape or `%00` yields the empty string (the
/// function returns an error status and `unescape_func` returns "").
pub(crate) fn unescape(s: &str) -> String {
    let b = c_bytes(s);
    let mut out = Vec::with_capacity(b.len());
    let mut bad = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != b'%' {
            out.push(c);
            i += 1;
            continue;
        }
        match (
            b.get(i + 1).copied().and_then(hex_val),
            b.get(i + 2).copied().and_then(hex_val),
        ) {
            (Some(h), Some(l)) => {
                let decoded = (h << 4) | l;
                if decoded == 0 {
                    bad = true;
                    out.push(0);
                    i += 3;
                } else if decoded == b'/' {
                    // reserved: copied through undecoded
                    out.extend_from_slice(&b[i..i + 3]);
                    i += 3;
                } else {
                    out.push(decoded);
                    i += 3;
                }
            }
            _ => {
                bad = true;
                out.push(b'%');
                i += 1;
            }
        }
    }
    if bad {
        return String::new();
    }
    lossy(&out)
}

/// `base64()`: `ap_pbase64encode` (standard alphabet, `=` padding).
pub(crate) fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(c_bytes(s))
}

/// `apr_base64_decode`'s leniency: no padding wanted, stray low bits of
/// the last sextet ignored.
const APR_DECODE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// `unbase64()`: `ap_pbase64decode` = `apr_base64_decode`: decodes up to
/// the first byte outside the alphabet (padding included), ignores a lone
/// trailing sextet, and the result is used as a C string.
pub(crate) fn unbase64(s: &str) -> String {
    use base64::Engine as _;
    let b = s.as_bytes();
    let end = b
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/'))
        .unwrap_or(b.len());
    // A lone sextet after whole groups carries no whole byte.
    let digits = &b[..end - usize::from(end % 4 == 1)];
    let out = APR_DECODE.decode(digits).unwrap_or_default();
    let end = out.iter().position(|&c| c == 0).unwrap_or(out.len());
    lossy(&out[..end])
}

/// `md5()`: `ap_md5`, lower-case hex.
pub(crate) fn md5_hex(s: &str) -> String {
    hex_string(&Md5::digest(c_bytes(s)))
}

/// `sha1()`: `apr_sha1` + `ap_bin2hex`, lower-case hex.
pub(crate) fn sha1_hex(s: &str) -> String {
    hex_string(&Sha1::digest(c_bytes(s)))
}

/// `ldap()`: `apr_pescape_ldap(.., APR_ESCAPE_LDAP_ALL)`: non-printable
/// bytes and the RFC 4514 / RFC 4515 specials become `\xx`.
pub(crate) fn ldap(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    for &c in c_bytes(s) {
        let printable = (0x20..0x7f).contains(&c);
        if !printable || b"\"+,;<>\\*()".contains(&c) {
            push_hex(&mut out, b'\\', c);
        } else {
            out.push(c);
        }
    }
    lossy(&out)
}

/// `-T` (`op_T`): false for "", "0", and case-insensitive "off", "no",
/// "false"; true otherwise.
pub(crate) fn op_t(s: &str) -> bool {
    !(s.is_empty()
        || s == "0"
        || s.eq_ignore_ascii_case("off")
        || s.eq_ignore_ascii_case("no")
        || s.eq_ignore_ascii_case("false"))
}

/// `apr_fnmatch(pattern, string, flags)` for the flags ap_expr uses:
/// `pathname` (APR_FNM_PATHNAME, for `-fnmatch`: wildcards and brackets
/// never match `/`) and `nocase` (APR_FNM_CASE_BLIND, for `-strcmatch`).
/// The strings end at a NUL, as C strings do.
pub(crate) fn wildcard_match(pattern: &str, string: &str, pathname: bool, nocase: bool) -> bool {
    use htgate_util::fnmatch::{fnmatch, Flags};
    let flags = Flags {
        pathname,
        casefold: nocase,
        ..Flags::NONE
    };
    fnmatch(c_bytes(pattern), c_bytes(string), flags)
}

/// An `apr_ipsubnet_t`: address and mask, with `sub` already masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subnet {
    V4 { sub: u32, mask: u32 },
    V6 { sub: u128, mask: u128 },
}

/// APR's `inet_pton4`: exactly four dotted decimal parts of at most 255
/// (leading zeros allowed, read as decimal).
fn inet_pton4(s: &str) -> Option<u32> {
    let mut parts = [0u32; 4];
    let mut octets = 0usize;
    let mut saw_digit = false;
    for &ch in s.as_bytes() {
        if ch.is_ascii_digit() {
            if !saw_digit {
                octets += 1;
                if octets > 4 {
                    return None;
                }
                saw_digit = true;
            }
            let cur = &mut parts[octets - 1];
            *cur = *cur * 10 + u32::from(ch - b'0');
            if *cur > 255 {
                return None;
            }
        } else if ch == b'.' && saw_digit {
            if octets == 4 {
                return None;
            }
            saw_digit = false;
        } else {
            return None;
        }
    }
    if octets < 4 {
        return None;
    }
    Some(parts.iter().fold(0u32, |acc, &o| (acc << 8) | o))
}

/// `looks_like_ip`: has a colon (IPv6), or only digits and dots.
fn looks_like_ip(s: &str) -> bool {
    !s.is_empty() && (s.contains(':') || s.bytes().all(|b| b == b'.' || b.is_ascii_digit()))
}

/// `parse_network`: the legacy partial form, `10.1` = `10.1.0.0/16`.
fn parse_network(s: &str) -> Option<Subnet> {
    if s.len() > "255.255.255.255".len() {
        return None;
    }
    let b = s.as_bytes();
    let (mut sub, mut mask) = (0u32, 0u32);
    let mut shift: i32 = 24;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return None;
        }
        let mut octet: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            octet = (octet * 10 + u32::from(b[i] - b'0')).min(1000);
            i += 1;
        }
        if i < b.len() {
            if b[i] != b'.' {
                return None;
            }
            i += 1;
        }
        if shift < 0 || octet > 255 {
            return None;
        }
        sub |= octet << shift;
        mask |= 0xff << shift;
        shift -= 8;
    }
    Some(Subnet::V4 { sub, mask })
}

/// `strtol(s, &end, 10)` that must consume the whole string.
fn strtol_full(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(htgate_util::atoi(t))
}

impl Subnet {
    /// `apr_ipsubnet_create(addr, mask)` on `"addr[/mask]"` as
    /// `subnet_parse_arg` splits it. `None` where APR returns an error.
    pub(crate) fn parse(text: &str) -> Option<Subnet> {
        let (addr, mask) = match text.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (text, None),
        };
        if !looks_like_ip(addr) {
            return None;
        }
        // parse_ip: IPv6 (IPv4-mapped refused), IPv4, or (without a mask)
        // the partial network form.
        let base = if let Ok(v6) = addr.parse::<Ipv6Addr>() {
            if v6.to_ipv4_mapped().is_some() {
                return None;
            }
            Subnet::V6 {
                sub: u128::from(v6),
                mask: u128::MAX,
            }
        } else if let Some(v4) = inet_pton4(addr) {
            Subnet::V4 {
                sub: v4,
                mask: u32::MAX,
            }
        } else if mask.is_none() {
            parse_network(addr)?
        } else {
            return None;
        };
        let with_mask = match (base, mask) {
            (b, None) => b,
            (Subnet::V4 { sub, .. }, Some(m)) => {
                let mask = match strtol_full(m) {
                    Some(bits @ 1..=32) => u32::MAX << (32 - bits),
                    _ => inet_pton4(m)?,
                };
                Subnet::V4 { sub, mask }
            }
            (Subnet::V6 { sub, .. }, Some(m)) => match strtol_full(m) {
                Some(bits @ 1..=128) => Subnet::V6 {
                    sub,
                    mask: u128::MAX << (128 - bits),
                },
                _ => return None,
            },
        };
        // fix_subnet
        Some(match with_mask {
            Subnet::V4 { sub, mask } => Subnet::V4 {
                sub: sub & mask,
                mask,
            },
            Subnet::V6 { sub, mask } => Subnet::V6 {
                sub: sub & mask,
                mask,
            },
        })
    }

    /// `apr_ipsubnet_test`: IPv4 subnets also match IPv4-mapped IPv6
    /// addresses; IPv6 subnets never match IPv4(-mapped) addresses.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Subnet::V4 { sub, mask }, IpAddr::V4(a)) => u32::from(a) & mask == sub,
            (Subnet::V4 { sub, mask }, IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|v4| u32::from(v4) & mask == sub),
            (Subnet::V6 { sub, mask }, IpAddr::V6(a)) => {
                a.to_ipv4_mapped().is_none() && u128::from(a) & mask == sub
            }
            (Subnet::V6 { .. }, IpAddr::V4(_)) => false,
        }
    }
}

/// The left side of `-ipmatch` (`apr_sockaddr_info_get` on a numeric
/// address; host names are not resolved here).
pub(crate) fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    inet_pton4(s).map(|v| IpAddr::V4(v.into()))
}
