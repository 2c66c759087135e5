//! The operators that compile their argument at load: `matches` (a regular expression),
//! `cidr` (IP networks) and the case-insensitive comparisons.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

/// The most memory a compiled `matches` expression may take.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A compiled `matches` expression (unanchored: `^` and `$` anchor it).
#[derive(Debug, Clone)]
pub struct Pattern(Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// Compiles `pattern`. On error, the byte offset in the pattern to blame (when the
    /// syntax is wrong) and the message.
    pub fn parse(pattern: &str) -> Result<Self, (Option<usize>, String)> {
        if let Err(error) = regex_syntax::Parser::new().parse(pattern) {
            let (offset, kind) = match &error {
                regex_syntax::Error::Parse(e) => (e.span().start.offset, e.kind().to_string()),
                regex_syntax::Error::Translate(e) => (e.span().start.offset, e.kind().to_string()),
                other => (0, other.to_string()),
            };
            return Err((
                Some(offset),
                format!("`matches`: bad regular expression: {kind}"),
            ));
        }
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Self)
            .map_err(|e| {
                let why = match e {
                    regex::Error::CompiledTooBig(limit) => format!(
                        "the compiled expression is over the limit of {limit} bytes; make it smaller (fewer repetitions or alternatives)"
                    ),
                    other => other.to_string(),
                };
                (None, format!("`matches`: {why}"))
            })
    }

    /// Whether the expression matches somewhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

/// Networks for `cidr`: the value is an address inside one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks(pub Vec<IpNet>);

impl Networks {
    /// Reads `10.0.0.0/8` or `2001:db8::/32`. A network written with host bits set
    /// (`10.0.0.1/8`) is refused: it is most likely a typo, and the fix is shown.
    pub fn parse_one(text: &str) -> Result<IpNet, String> {
        let net: IpNet = text.parse().map_err(|_| {
            if text.parse::<IpAddr>().is_ok() {
                let bits = if text.contains(':') { 128 } else { 32 };
                format!(
                    "`cidr`: `{text}` is an address, not a network; write \"{text}/{bits}\" for it alone"
                )
            } else {
                format!(
                    "`cidr`: `{text}` is not a network; write an address and a prefix length, e.g. \"10.0.0.0/8\" or \"2001:db8::/32\""
                )
            }
        })?;
        if net.trunc() != net {
            return Err(format!(
                "`cidr`: `{text}` has bits set after the /{} prefix; did you mean \"{}\"?",
                net.prefix_len(),
                net.trunc()
            ));
        }
        Ok(net)
    }

    /// Whether `text` is an IP address inside one of the networks. An IPv4-mapped IPv6
    /// address (`::ffff:10.0.0.1`) counts as its IPv4 address.
    pub fn contain(&self, text: &str) -> bool {
        let Ok(addr) = text.parse::<IpAddr>() else {
            return false;
        };
        let mapped = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&addr) || mapped.is_some_and(|m| net.contains(&m)))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nets: Vec<String> = self
            .0
            .iter()
            .map(|n| format!("{:?}", n.to_string()))
            .collect();
        match nets.as_slice() {
            [one] => f.write_str(one),
            many => write!(f, "[{}]", many.join(", ")),
        }
    }
}

/// Whether two strings are equal under Unicode case folding (`É` = `é`, `ß` = `SS`).
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    unicase::eq(a, b)
}

/// Where, in `text`, the byte `offset` of the string value written at `span` is: the
/// position of a regular-expression error in the file. Escapes in a `"..."` string are
/// decoded on the way; when the string cannot be followed, its start.
pub fn offset_in_source(text: &str, span: &Range<usize>, offset: usize) -> usize {
    let Some(written) = text.get(span.clone()) else {
        return span.start;
    };
    let quote = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|q| written.starts_with(q));
    let Some(quote) = quote else {
        return span.start;
    };
    let mut start = quote.len();
    // A line break right after `"""` or `'''` is not part of the string.
    if quote.len() == 3 {
        start += ["\r\n", "\n"]
            .into_iter()
            .find(|nl| written[start..].starts_with(nl))
            .map_or(0, str::len);
    }
    let body = &written[start..];
    if quote.starts_with('\'') {
        return span.start + start + offset.min(body.len());
    }
    let mut decoded = 0;
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if decoded >= offset {
            return span.start + start + at;
        }
        if c != '\\' {
            decoded += c.len_utf8();
            continue;
        }
        let Some((_, escape)) = chars.next() else {
            break;
        };
        let hex = match escape {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            '\n' | '\r' | ' ' | '\t' => {
                // A line-ending backslash: the line break and leading blanks vanish.
                while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
                continue;
            }
            _ => {
                decoded += 1;
                continue;
            }
        };
        let digits: String = (0..hex)
            .filter_map(|_| chars.next().map(|(_, c)| c))
            .collect();
        decoded += u32::from_str_radix(&digits, 16)
            .ok()
            .and_then(char::from_u32)
            .map_or(1, char::len_utf8);
    }
    span.start
}
