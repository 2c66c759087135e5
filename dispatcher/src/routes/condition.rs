//! `where` conditions: a path into the event and a test on the value found there.
//! A table value is always an operator table (a mistyped operator is an error, never
//! silently a field name); nested fields are written as quoted dotted paths.
//! A path that is missing never fails loudly: the test is simply false (only
//! `exists = false` and `not` hold on a missing value).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::event::EventDoc;
use super::file::list;

/// Where a condition looks.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    /// An event attribute (`source`, `subject`, `id`, `type`, ...) or a field under
    /// `data`, as the attribute name followed by the field names.
    Attribute(Vec<String>),
    /// `headers.<name>`: an AMQP header of the message.
    Header(String),
}

/// What must hold for the value at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal to the literal (numbers compare by value: `18` equals `18.0`).
    Eq(Literal),
    /// Equal to one of the literals.
    In(Vec<Literal>),
    /// A string starting with this.
    Prefix(String),
    /// A string ending with this.
    Suffix(String),
    /// Present and not null (`true`), or absent or null (`false`).
    Exists(bool),
    /// Compared with the literal: numbers with numbers, strings with strings.
    Compare(Comparison, Literal),
    /// The inner test does not hold.
    Not(Box<Test>),
    /// Every test holds (an operator table with several operators).
    All(Vec<Test>),
}

/// `gt`, `gte`, `lt`, `lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// One condition of a route: all of a route's conditions must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The path as written, e.g. `data.country`.
    pub key: String,
    pub path: Path,
    pub test: Test,
}

/// Attributes a path may start with.
pub const ROOTS: &[&str] = &[
    "data",
    "source",
    "subject",
    "id",
    "type",
    "time",
    "specversion",
    "datacontenttype",
    "dataschema",
    "headers",
];

const OPERATORS: &[&str] = &[
    "eq", "in", "prefix", "suffix", "exists", "gt", "gte", "lt", "lte", "not",
];

impl Path {
    /// Parses `data.x.y`, `source`, `headers.<name>`, ...
    pub fn parse(key: &str) -> Result<Self, String> {
        let (root, rest) = key.split_once('.').unwrap_or((key, ""));
        if !ROOTS.contains(&root) {
            return Err(format!(
                "unknown path `{key}`: a path starts with {}",
                list(ROOTS)
            ));
        }
        if root == "headers" {
            return if rest.is_empty() {
                Err("`headers` needs a header name: `headers.<name>`".to_owned())
            } else {
                Ok(Self::Header(rest.to_owned()))
            };
        }
        let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path `{key}` has an empty field name"));
        }
        if root != "data" && segments.len() > 1 {
            return Err(format!(
                "path `{key}`: `{root}` is a plain attribute with no fields; only `data` and `headers` have fields"
            ));
        }
        Ok(Self::Attribute(segments))
    }

    /// The value at this path in `event`, if there is one.
    pub fn lookup<'a>(&self, event: &'a EventDoc<'_>) -> Option<Cow<'a, Value>> {
        match self {
            Self::Header(name) => event.header(name).map(Cow::Owned),
            Self::Attribute(segments) => event.lookup(segments),
        }
    }
}

impl Condition {
    /// Whether the condition holds for `event`.
    pub fn holds(&self, event: &EventDoc<'_>) -> bool {
        self.test.holds(self.path.lookup(event).as_deref())
    }
}

impl Test {
    /// Whether the test holds for `value` (`None`: the path is missing).
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let value = value.filter(|v| !v.is_null());
        match self {
            Self::Eq(literal) => value.is_some_and(|v| literal.equals(v)),
            Self::In(literals) => value.is_some_and(|v| literals.iter().any(|l| l.equals(v))),
            Self::Prefix(p) => value
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(p)),
            Self::Suffix(p) => value
                .and_then(Value::as_str)
                .is_some_and(|s| s.ends_with(p)),
            Self::Exists(expected) => value.is_some() == *expected,
            Self::Compare(op, literal) => value
                .and_then(|v| literal.compare_to(v))
                .is_some_and(|ord| op.accepts(ord)),
            Self::Not(inner) => !inner.holds(value),
            Self::All(tests) => tests.iter().all(|t| t.holds(value)),
        }
    }

    /// Reads a condition value: a literal (equality) or an operator table.
    pub fn parse(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Table(table) if table.is_empty() => Err(format!(
                "an empty condition table; use one of {}",
                list(OPERATORS)
            )),
            toml::Value::Table(table) => Self::operators(table),
            other => Ok(Self::Eq(Literal::parse(other)?)),
        }
    }

    fn operators(table: &toml::Table) -> Result<Self, String> {
        let mut tests = Vec::new();
        for (op, value) in table {
            tests.push(Self::operator(op, value)?);
        }
        Ok(if tests.len() == 1 {
            tests.remove(0)
        } else {
            Self::All(tests)
        })
    }

    fn operator(op: &str, value: &toml::Value) -> Result<Self, String> {
        let string = |what: &str| {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("`{what}` takes a string, found {}", value.type_str()))
        };
        Ok(match op {
            "eq" => Self::Eq(Literal::parse(value)?),
            "in" => {
                let items = value.as_array().ok_or_else(|| {
                    format!("`in` takes a list of values, found {}", value.type_str())
                })?;
                if items.is_empty() {
                    return Err("`in = []` can never hold; list at least one value".to_owned());
                }
                Self::In(items.iter().map(Literal::parse).collect::<Result<_, _>>()?)
            }
            "prefix" => Self::Prefix(string("prefix")?),
            "suffix" => Self::Suffix(string("suffix")?),
            "exists" => Self::Exists(value.as_bool().ok_or_else(|| {
                format!("`exists` takes true or false, found {}", value.type_str())
            })?),
            "gt" | "gte" | "lt" | "lte" => {
                let literal = Literal::parse(value)?;
                if matches!(literal, Literal::Bool(_)) {
                    return Err(format!("`{op}` compares numbers or strings, not booleans"));
                }
                let comparison = match op {
                    "gt" => Comparison::Gt,
                    "gte" => Comparison::Gte,
                    "lt" => Comparison::Lt,
                    _ => Comparison::Lte,
                };
                Self::Compare(comparison, literal)
            }
            "not" => Self::Not(Box::new(Self::parse(value)?)),
            other => {
                return Err(format!(
                    "unknown operator `{other}`; operators are {}. To test a nested field, \
                     quote the whole path as the key: \"data.a.b\" = ...",
                    list(OPERATORS)
                ));
            }
        })
    }
}

impl Literal {
    fn parse(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(s) => Ok(Self::Str(s.clone())),
            toml::Value::Integer(i) => Ok(Self::Int(*i)),
            toml::Value::Float(f) => Ok(Self::Float(*f)),
            toml::Value::Boolean(b) => Ok(Self::Bool(*b)),
            toml::Value::Datetime(d) => Err(format!(
                "a TOML date-time ({d}) is not a condition value; write it as a string, \
                 e.g. {{ gte = \"{d}\" }}, to compare as text"
            )),
            toml::Value::Array(_) => Err(
                "a list is not a value to compare with; to accept one of several values write { in = [...] }"
                    .to_owned(),
            ),
            toml::Value::Table(_) => Err("expected a value, found a table".to_owned()),
        }
    }

    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Str(a), Value::String(b)) => a == b,
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Int(_) | Self::Float(_), Value::Number(_)) => {
                self.compare_to(value) == Some(Ordering::Equal)
            }
            _ => false,
        }
    }

    /// How `value` compares to this literal (`value` on the left), when comparable.
    fn compare_to(&self, value: &Value) -> Option<Ordering> {
        match (self, value) {
            (Self::Str(a), Value::String(b)) => Some(b.as_str().cmp(a.as_str())),
            (Self::Int(a), Value::Number(b)) => match b.as_i64() {
                Some(b) => Some(b.cmp(a)),
                None => b.as_f64()?.partial_cmp(&(*a as f64)),
            },
            (Self::Float(a), Value::Number(b)) => b.as_f64()?.partial_cmp(a),
            _ => None,
        }
    }
}

impl Comparison {
    fn accepts(self, ord: Ordering) -> bool {
        match self {
            Self::Gt => ord == Ordering::Greater,
            Self::Gte => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Lte => ord != Ordering::Greater,
        }
    }
}

mod display;

#[cfg(test)]
mod tests;
