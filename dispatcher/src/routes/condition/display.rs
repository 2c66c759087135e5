//! How conditions print in `explain` and on `GET /routes`.

use std::fmt;

use super::{Comparison, Condition, Literal, Test};

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

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Eq(l) => write!(f, "= {l}"),
            Self::In(ls) => {
                let items: Vec<String> = ls.iter().map(ToString::to_string).collect();
                write!(f, "in [{}]", items.join(", "))
            }
            Self::Prefix(p) => write!(f, "prefix {p:?}"),
            Self::Suffix(s) => write!(f, "suffix {s:?}"),
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
            Self::All(tests) => {
                let items: Vec<String> = tests.iter().map(ToString::to_string).collect();
                write!(f, "{}", items.join(" and "))
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.test)
    }
}
