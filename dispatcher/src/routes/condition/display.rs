//! How conditions print in `explain` and on `GET /routes`.

use std::fmt;

use super::{Comparison, Condition, Field, Literal, Test};

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{s:?}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn join<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eq(l) => write!(f, "= {l}"),
            Self::In(ls) => write!(f, "in [{}]", join(ls, ", ")),
            Self::AnythingBut(ls) => match ls.as_slice() {
                [one] => write!(f, "anything but {one}"),
                many => write!(f, "anything but [{}]", join(many, ", ")),
            },
            Self::EqIgnoreCase(s) => write!(f, "= {s:?} ignoring case"),
            Self::InIgnoreCase(list) => write!(f, "in [{}] ignoring case", quoted(list)),
            Self::Prefix(p) => write!(f, "prefix {p:?}"),
            Self::Suffix(s) => write!(f, "suffix {s:?}"),
            Self::Contains(l) => write!(f, "contains {l}"),
            Self::Wildcard(w) => write!(f, "wildcard {w}"),
            Self::Cidr(nets) => write!(f, "cidr {nets}"),
            Self::Matches(p) => write!(f, "matches {p}"),
            Self::Exists(e) => write!(f, "exists = {e}"),
            Self::Compare(op, l) => {
                let op = match op {
                    Comparison::Gt => ">",
                    Comparison::Gte => ">=",
                    Comparison::Lt => "<",
                    Comparison::Lte => "<=",
                };
                write!(f, "{op} {l}")
            }
            Self::Not(inner) => write!(f, "not ({inner})"),
            Self::All(tests) => f.write_str(&join(tests, " and ")),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.test)
    }
}

/// A table of conditions: `{ a = 1, b > 2 }`.
pub fn table(conditions: &[Condition]) -> String {
    format!("{{ {} }}", join(conditions, ", "))
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tables = |tables: &[Vec<Condition>]| {
            tables
                .iter()
                .map(|t| table(t))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Field(field) => field.fmt(f),
            Self::Any(branches) => write!(f, "any [{}]", tables(branches)),
            Self::All(branches) => write!(f, "all [{}]", tables(branches)),
            Self::Not(conditions) => write!(f, "not {}", table(conditions)),
        }
    }
}
