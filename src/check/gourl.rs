//! Go's `net/url` parser, as kube-apiserver 1.36 runs it (Go 1.26, `godebug default=go1.26`,
//! so colons in an http(s) host are strict). The API server's CEL `isURL()` and `url()`
//! are `url.ParseRequestURI` (then `url.Parse`), which accept and refuse different strings
//! than the WHATWG parser: `https:///x` and `https:x` parse, `:70000` is a port, while a
//! backslash, a bad `%` escape, a `%`-encoded ASCII byte in a host or any control byte
//! (a trailing newline from a YAML `|` block) is an error.
//!
//! Go strings are bytes, so the parts are kept as bytes; escapes may decode to non-UTF-8.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed URL, the fields of Go's `url.URL` that the CEL library reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoUrl {
    /// Lowercased scheme, empty for a path.
    pub scheme: Vec<u8>,
    /// The rest of a rootless URL (`mailto:x`).
    pub opaque: Vec<u8>,
    /// `host` or `host:port`, unescaped.
    pub host: Vec<u8>,
    /// The decoded path.
    pub path: Vec<u8>,
    /// The path as written, when it differs from the default escaping of `path`.
    pub raw_path: Vec<u8>,
    /// The query as written, without `?`.
    pub raw_query: Vec<u8>,
}

/// The escaping contexts of Go's `shouldEscape`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
}

/// Go's `shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(mode, Mode::Host | Mode::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::QueryComponent => true,
            Mode::Host | Mode::Zone => true,
        },
        _ => true,
    }
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Go's `unescape`: `%XX` decoded, `+` a space in a query component. Errors as Go words them.
fn unescape(s: &[u8], mode: Mode) -> Result<Vec<u8>, String> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if i + 2 >= s.len()
                    || !s[i + 1].is_ascii_hexdigit()
                    || !s[i + 2].is_ascii_hexdigit()
                {
                    let end = (i + 3).min(s.len());
                    return Err(format!("invalid URL escape {}", quote(&s[i..end])));
                }
                let escaped = &s[i..i + 3];
                // In a host, %-encoding is for non-ASCII bytes only (%25 introduces a zone).
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && escaped != b"%25" {
                    return Err(format!("invalid URL escape {}", quote(escaped)));
                }
                if mode == Mode::Zone {
                    let v = (unhex(s[i + 1]) << 4) | unhex(s[i + 2]);
                    if escaped != b"%25" && v != b' ' && should_escape(v, Mode::Host) {
                        return Err(format!("invalid URL escape {}", quote(escaped)));
                    }
                }
                i += 3;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return Err(format!(
                        "invalid character {} in host name",
                        quote(&s[i..i + 1])
                    ));
                }
                i += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                out.push((unhex(s[i + 1]) << 4) | unhex(s[i + 2]));
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `escape` for a path.
fn escape_path(s: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if should_escape(c, Mode::Path) {
            out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            out.push(c);
        }
    }
    out
}

/// Like Go's `strconv.Quote`, enough for error messages.
fn quote(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn find(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

fn rfind(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().rposition(|&b| b == needle)
}

/// Go's `getScheme`: `[a-zA-Z][a-zA-Z0-9+.-]*:`, or no scheme at all.
fn split_scheme(raw: &[u8]) -> Result<(&[u8], &[u8]), String> {
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok((&[], raw)),
        }
    }
    Ok((&[], raw))
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no fragment.
pub fn parse_request_uri(raw: &str) -> Result<GoUrl, String> {
    parse(raw.as_bytes(), true).map_err(|e| format!("parse {raw:?}: {e}"))
}

/// Go's `url.Parse`: any URL reference; a `#fragment` is cut off first.
pub fn parse_reference(raw: &str) -> Result<GoUrl, String> {
    let bytes = raw.as_bytes();
    let (url, fragment) = match find(bytes, b'#') {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    };
    let parsed = parse(url, false).map_err(|e| format!("parse {raw:?}: {e}"))?;
    if let Some(fragment) = fragment {
        // The fragment only has to unescape; its value is not kept.
        unescape(fragment, Mode::Path).map_err(|e| format!("parse {raw:?}: {e}"))?;
    }
    Ok(parsed)
}

/// Go's `parse`; `via_request` is `ParseRequestURI`.
fn parse(raw: &[u8], via_request: bool) -> Result<GoUrl, String> {
    if raw.iter().any(|&b| b < b' ' || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".into());
    }
    let mut url = GoUrl::default();
    if raw == b"*" {
        url.path = b"*".to_vec();
        return Ok(url);
    }
    let (scheme, mut rest) = split_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    let questions = rest.iter().filter(|&&b| b == b'?').count();
    if rest.last() == Some(&b'?') && questions == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some(i) = find(rest, b'?') {
        url.raw_query = rest[i + 1..].to_vec();
        rest = &rest[..i];
    }
    if !rest.starts_with(b"/") {
        if !url.scheme.is_empty() {
            // A rootless path is opaque (`mailto:jane@example.com`).
            url.opaque = rest.to_vec();
            return Ok(url);
        }
        if via_request {
            return Err("invalid URI for request".into());
        }
        let segment = &rest[..find(rest, b'/').unwrap_or(rest.len())];
        if segment.contains(&b':') {
            return Err("first path segment in URL cannot contain colon".into());
        }
    }
    if (!url.scheme.is_empty() || !via_request && !rest.starts_with(b"///"))
        && rest.starts_with(b"//")
    {
        let authority_and_path = &rest[2..];
        let (authority, path) = match find(authority_and_path, b'/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, &[][..]),
        };
        url.host = parse_authority(&url.scheme, authority)?;
        rest = path;
    }
    set_path(&mut url, rest)?;
    Ok(url)
}

fn set_path(url: &mut GoUrl, escaped: &[u8]) -> Result<(), String> {
    url.path = unescape(escaped, Mode::Path)?;
    url.raw_path = if escape_path(&url.path) == escaped {
        Vec::new()
    } else {
        escaped.to_vec()
    };
    Ok(())
}

/// Go's `parseAuthority`: `[userinfo@]host[:port]`; the user is checked, not kept.
fn parse_authority(scheme: &[u8], authority: &[u8]) -> Result<Vec<u8>, String> {
    let at = rfind(authority, b'@');
    let host = parse_host(scheme, &authority[at.map_or(0, |i| i + 1)..])?;
    if let Some(i) = at {
        let userinfo = &authority[..i];
        if !valid_userinfo(userinfo) {
            return Err("net/url: invalid userinfo".into());
        }
        match find(userinfo, b':') {
            None => {
                unescape(userinfo, Mode::UserPassword)?;
            }
            Some(colon) => {
                unescape(&userinfo[..colon], Mode::UserPassword)?;
                unescape(&userinfo[colon + 1..], Mode::UserPassword)?;
            }
        }
    }
    Ok(host)
}

/// Go's `parseHost` (Go 1.26): `host[:port]` or `[ipv6]` with an optional zone and port.
fn parse_host(scheme: &[u8], host: &[u8]) -> Result<Vec<u8>, String> {
    match rfind(host, b'[') {
        Some(i) if i > 0 => Err("invalid IP-literal".into()),
        Some(_) => parse_ip_literal(host),
        None => {
            if let Some(first) = find(host, b':') {
                let last = rfind(host, b':').unwrap_or(first);
                // Strict colons (the first one starts the port) for http(s) only.
                let start = if scheme == b"http" || scheme == b"https" {
                    first
                } else {
                    last
                };
                if !valid_optional_port(&host[start..]) {
                    return Err(format!("invalid port {} after host", quote(&host[start..])));
                }
            }
            unescape(host, Mode::Host)
        }
    }
}

/// `[addr]`, `[addr%25zone]`, with an optional `:port` after the bracket.
fn parse_ip_literal(host: &[u8]) -> Result<Vec<u8>, String> {
    let close = rfind(host, b']').ok_or_else(|| "missing ']' in host".to_string())?;
    let colon_port = &host[close + 1..];
    if !valid_optional_port(colon_port) {
        return Err(format!("invalid port {} after host", quote(colon_port)));
    }
    let colon_port = unescape(colon_port, Mode::Host)?;
    let inner = &host[1..close];
    let hostname = match inner.windows(3).position(|w| w == b"%25") {
        Some(zone) => {
            let mut name = unescape(&inner[..zone], Mode::Host)?;
            name.extend(unescape(&inner[zone..], Mode::Zone)?);
            name
        }
        None => unescape(inner, Mode::Host)?,
    };
    if !is_ipv6_literal(&hostname)? {
        return Err("invalid IP-literal".into());
    }
    let mut out = b"[".to_vec();
    out.extend(hostname);
    out.push(b']');
    out.extend(colon_port);
    Ok(out)
}

/// Go's `netip.ParseAddr` on a bracketed host: `Ok(true)` for IPv6 (with an optional
/// non-empty zone), `Ok(false)` for IPv4, which brackets may not hold, else an error.
fn is_ipv6_literal(name: &[u8]) -> Result<bool, String> {
    let text = std::str::from_utf8(name).map_err(|_| "invalid host: unable to parse IP")?;
    if text.contains(':') {
        let address = match text.split_once('%') {
            Some((_, "")) => return Err("invalid host: zone must be a non-empty string".into()),
            Some((address, _)) => address,
            None => text,
        };
        return address
            .parse::<Ipv6Addr>()
            .map(|_| true)
            .map_err(|_| format!("invalid host: ParseAddr({text:?}): unable to parse IP"));
    }
    text.parse::<Ipv4Addr>()
        .map(|_| false)
        .map_err(|_| format!("invalid host: ParseAddr({text:?}): unable to parse IP"))
}

/// `""` or `:` followed by digits only (any number of them: Go accepts `:70000`).
fn valid_optional_port(port: &[u8]) -> bool {
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Go's `validUserinfo`: unreserved, sub-delims, `:`, `%` and `@`.
fn valid_userinfo(s: &[u8]) -> bool {
    String::from_utf8_lossy(s).chars().all(|r| {
        r.is_ascii_alphanumeric()
            || matches!(
                r,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    })
}

impl GoUrl {
    /// Go's `URL.Hostname`: the host without a valid port and without IPv6 brackets.
    pub fn hostname(&self) -> &[u8] {
        split_host_port(&self.host).0
    }

    /// Go's `URL.Port`: the digits after the last colon, when they are a valid port.
    pub fn port(&self) -> &[u8] {
        split_host_port(&self.host).1
    }

    /// Go's `URL.EscapedPath`.
    pub fn escaped_path(&self) -> Vec<u8> {
        if !self.raw_path.is_empty()
            && valid_encoded_path(&self.raw_path)
            && unescape(&self.raw_path, Mode::Path).is_ok_and(|p| p == self.path)
        {
            return self.raw_path.clone();
        }
        if self.path == b"*" {
            return b"*".to_vec();
        }
        escape_path(&self.path)
    }

    /// Go's `URL.Query`: malformed pairs are dropped, as Go drops them.
    pub fn query(&self) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
        let mut values: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        // Go refuses more than 10,000 parameters outright.
        if self.raw_query.iter().filter(|&&b| b == b'&').count() + 1 > 10_000 {
            return values;
        }
        for pair in self.raw_query.split(|&b| b == b'&') {
            if pair.is_empty() || pair.contains(&b';') {
                continue;
            }
            let (key, value) = match find(pair, b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let (Ok(key), Ok(value)) = (
                unescape(key, Mode::QueryComponent),
                unescape(value, Mode::QueryComponent),
            ) else {
                continue;
            };
            values.entry(key).or_default().push(value);
        }
        values
    }
}

fn split_host_port(host_port: &[u8]) -> (&[u8], &[u8]) {
    let mut host = host_port;
    let mut port: &[u8] = &[];
    if let Some(colon) = rfind(host, b':')
        && valid_optional_port(&host[colon..])
    {
        port = &host[colon + 1..];
        host = &host[..colon];
    }
    if host.len() >= 2 && host.starts_with(b"[") && host.ends_with(b"]") {
        host = &host[1..host.len() - 1];
    }
    (host, port)
}

/// Go's `validEncoded` for a path.
fn valid_encoded_path(s: &[u8]) -> bool {
    s.iter().all(|&c| {
        matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'['
                | b']'
                | b'%'
        ) || !should_escape(c, Mode::Path)
    })
}

#[cfg(test)]
#[path = "gourl_tests.rs"]
mod tests;
