//! `where` conditions: a path into the event and a test on the value found there, and
//! the boolean structure around them (`any`, `all`, `not`).
//!
//! A table value is always an operator table (a mistyped operator is an error, never
//! silently a field name); nested fields are written as quoted dotted paths. A path
//! that is missing never fails loudly: the test is simply false (only `exists = false`
//! and `not` hold on a missing value). Everything an operator needs (a regular
//! expression, a wildcard, networks, a folded string) is compiled once, at load.

use std::cmp::Ordering;

use serde_json::Value;

use super::event::EventDoc;

pub use matchers::{Networks, Pattern};
pub use parse::{OPERATORS, read_test, read_where};
pub use path::{Path, Property, ROOTS};
pub use wildcard::Wildcard;

/// One entry of a `where` table (a route matches when all of its entries hold).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A path and a test on the value there.
    Field(Field),
    /// `any = [{...}, ...]`: at least one of the tables holds.
    Any(Vec<Vec<Condition>>),
    /// `all = [{...}, ...]`: every table holds.
    All(Vec<Vec<Condition>>),
    /// `not = {...}`: the table does not hold (as a whole).
    Not(Vec<Condition>),
}

/// A test on the value at one path.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The path as written, e.g. `data.country`.
    pub key: String,
    pub path: Path,
    pub test: Test,
}

/// What must hold for the value at a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal to the literal (numbers compare by value: `18` equals `18.0`).
    Eq(Literal),
    /// Equal to one of the literals.
    In(Vec<Literal>),
    /// Present, and equal to none of the literals.
    AnythingBut(Vec<Literal>),
    /// A string equal to this one under Unicode case folding.
    EqIgnoreCase(String),
    /// A string equal to one of these under Unicode case folding.
    InIgnoreCase(Vec<String>),
    /// A string starting with this.
    Prefix(String),
    /// A string ending with this.
    Suffix(String),
    /// A string containing this string, or an array with an element equal to this.
    Contains(Literal),
    /// A string matching a `*` pattern as a whole.
    Wildcard(Wildcard),
    /// A string that is an IP address inside one of these networks.
    Cidr(Networks),
    /// A string in which this regular expression matches.
    Matches(Pattern),
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

impl Condition {
    /// Whether the condition holds for `event`.
    pub fn holds(&self, event: &EventDoc<'_>) -> bool {
        match self {
            Self::Field(field) => field.holds(event),
            Self::Any(tables) => tables.iter().any(|t| all_hold(t, event)),
            Self::All(tables) => tables.iter().all(|t| all_hold(t, event)),
            Self::Not(table) => !all_hold(table, event),
        }
    }
}

/// Whether every condition of a table holds.
pub fn all_hold(table: &[Condition], event: &EventDoc<'_>) -> bool {
    table.iter().all(|c| c.holds(event))
}

impl Field {
    /// Whether the test holds for the value at the path.
    pub fn holds(&self, event: &EventDoc<'_>) -> bool {
        self.test.holds(self.path.lookup(event).as_deref())
    }
}

impl Test {
    /// Whether the test holds for `value` (`None`: the path is missing).
    pub fn holds(&self, value: Option<&Value>) -> bool {
        let value = value.filter(|v| !v.is_null());
        let text = value.and_then(Value::as_str);
        match self {
            Self::Eq(literal) => value.is_some_and(|v| literal.equals(v)),
            Self::In(literals) => value.is_some_and(|v| literals.iter().any(|l| l.equals(v))),
            Self::AnythingBut(literals) => {
                value.is_some_and(|v| !literals.iter().any(|l| l.equals(v)))
            }
            Self::EqIgnoreCase(s) => text.is_some_and(|t| matchers::eq_ignore_case(t, s)),
            Self::InIgnoreCase(list) => {
                text.is_some_and(|t| list.iter().any(|s| matchers::eq_ignore_case(t, s)))
            }
            Self::Prefix(p) => text.is_some_and(|s| s.starts_with(p)),
            Self::Suffix(p) => text.is_some_and(|s| s.ends_with(p)),
            Self::Contains(literal) => value.is_some_and(|v| literal.is_in(v)),
            Self::Wildcard(w) => text.is_some_and(|s| w.matches(s)),
            Self::Cidr(nets) => text.is_some_and(|s| nets.contain(s)),
            Self::Matches(p) => text.is_some_and(|s| p.is_match(s)),
            Self::Exists(expected) => value.is_some() == *expected,
            Self::Compare(op, literal) => value
                .and_then(|v| literal.compare_to(v))
                .is_some_and(|ord| op.accepts(ord)),
            Self::Not(inner) => !inner.holds(value),
            Self::All(tests) => tests.iter().all(|t| t.holds(value)),
        }
    }
}

impl Literal {
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

    /// `contains`: a substring of a string, or an element of an array.
    fn is_in(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Str(part), Value::String(whole)) => whole.contains(part.as_str()),
            (_, Value::Array(items)) => items.iter().any(|item| self.equals(item)),
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

pub mod display;
mod literals;
mod matchers;
pub mod node;
mod parse;
mod path;
mod wildcard;

#[cfg(test)]
mod tests;
