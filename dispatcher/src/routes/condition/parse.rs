//! Reading a `where` table into [`Condition`]s: paths, operator tables and the boolean
//! structure (`any`, `all`, `not`). Every mistake is reported, each at the value it is
//! about, so a bad regular expression three levels down has its own line and column.

use std::ops::Range;

use serde_spanned::Spanned;

use super::literals::{literal, literals, strings};
use super::matchers::{Networks, Pattern, offset_in_source};
use super::node::Node;
use super::{Comparison, Condition, Field, Literal, Path, Test, Wildcard};
use crate::routes::error::Problem;
use crate::routes::file::list;

/// Every operator of an operator table.
pub const OPERATORS: &[&str] = &[
    "eq",
    "in",
    "anything_but",
    "eq_ignore_case",
    "in_ignore_case",
    "prefix",
    "suffix",
    "contains",
    "wildcard",
    "cidr",
    "matches",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "not",
];

/// Reads the entries of a `where` table (key, the span of the key, value); `text` is
/// the file, to place errors inside strings.
pub fn read_where<'a>(
    text: &str,
    entries: impl IntoIterator<Item = (&'a str, Range<usize>, &'a Spanned<Node>)>,
) -> Result<Vec<Condition>, Vec<Problem>> {
    let mut reader = Reader {
        text,
        problems: Vec::new(),
    };
    let conditions = reader.table(entries);
    if reader.problems.is_empty() {
        Ok(conditions)
    } else {
        Err(reader.problems)
    }
}

/// Reads one condition value (a literal or an operator table) for the path `key`.
pub fn read_test(text: &str, key: &str, value: &Spanned<Node>) -> Result<Test, Problem> {
    Reader {
        text,
        problems: Vec::new(),
    }
    .test(key, value)
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn table<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, Range<usize>, &'a Spanned<Node>)>,
    ) -> Vec<Condition> {
        entries
            .into_iter()
            .filter_map(|(key, span, value)| self.entry(key, span, value))
            .collect()
    }

    fn entry(&mut self, key: &str, span: Range<usize>, value: &Spanned<Node>) -> Option<Condition> {
        match key {
            "any" => self.branches(key, value).map(Condition::Any),
            "all" => self.branches(key, value).map(Condition::All),
            "not" => self.nested(key, value).map(Condition::Not),
            _ => {
                let path = Path::parse(key).map_err(|e| Problem::at(span, e));
                let test = self.test(key, value);
                match (path, test) {
                    (Ok(path), Ok(test)) => Some(Condition::Field(Field {
                        key: key.to_owned(),
                        path,
                        test,
                    })),
                    (path, test) => {
                        self.problems
                            .extend(path.err().into_iter().chain(test.err()));
                        None
                    }
                }
            }
        }
    }

    /// `any = [{...}, ...]` / `all = [...]`: a non-empty list of condition tables.
    fn branches(&mut self, key: &str, value: &Spanned<Node>) -> Option<Vec<Vec<Condition>>> {
        let Node::Array(items) = value.get_ref() else {
            self.problems.push(Problem::at(
                value.span(),
                format!(
                    "`{key}` takes a list of condition tables, e.g. {key} = [{{ \"data.country\" = \"FR\" }}, {{ \"data.vip\" = true }}], found {}",
                    value.get_ref().type_str()
                ),
            ));
            return None;
        };
        if items.is_empty() {
            let why = if key == "any" {
                "can never hold"
            } else {
                "always holds and says nothing"
            };
            self.problems.push(Problem::at(
                value.span(),
                format!("`{key} = []` {why}; list at least one table of conditions"),
            ));
            return None;
        }
        let before = self.problems.len();
        let tables: Vec<Vec<Condition>> = items
            .iter()
            .filter_map(|item| self.nested(key, item))
            .collect();
        (self.problems.len() == before).then_some(tables)
    }

    /// A table of conditions inside `any`, `all` or `not`.
    fn nested(&mut self, key: &str, value: &Spanned<Node>) -> Option<Vec<Condition>> {
        match value.get_ref() {
            Node::Table(entries) if entries.is_empty() => {
                self.problems.push(Problem::at(
                    value.span(),
                    format!("an empty table in `{key}`; write at least one condition"),
                ));
                None
            }
            Node::Table(entries) => {
                let before = self.problems.len();
                let conditions = self.table(entries.iter().map(|(k, v)| (k.as_str(), v.span(), v)));
                (self.problems.len() == before).then_some(conditions)
            }
            other => {
                self.problems.push(Problem::at(
                    value.span(),
                    format!(
                        "`{key}` takes tables of conditions such as {{ \"data.country\" = \"FR\" }}, found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    /// A literal (equality) or an operator table, for the path `key`.
    fn test(&mut self, key: &str, value: &Spanned<Node>) -> Result<Test, Problem> {
        let blame =
            |span: Range<usize>, message: String| Problem::at(span, format!("`{key}`: {message}"));
        match value.get_ref() {
            Node::Table(ops) if ops.is_empty() => Err(blame(
                value.span(),
                format!("an empty condition table; use one of {}", list(OPERATORS)),
            )),
            Node::Table(ops) => {
                let mut tests = Vec::new();
                for (op, arg) in ops {
                    tests.push(self.operator(op, arg).map_err(|(span, m)| blame(span, m))?);
                }
                Ok(if tests.len() == 1 {
                    tests.remove(0)
                } else {
                    Test::All(tests)
                })
            }
            other => literal(other)
                .map(Test::Eq)
                .map_err(|m| blame(value.span(), m)),
        }
    }

    fn operator(
        &mut self,
        op: &str,
        value: &Spanned<Node>,
    ) -> Result<Test, (Range<usize>, String)> {
        let at = |m: String| (value.span(), m);
        let node = value.get_ref();
        let string = |what: &str| {
            node.as_str().map(str::to_owned).ok_or_else(|| {
                at(format!(
                    "`{what}` takes a string, found {}",
                    node.type_str()
                ))
            })
        };
        Ok(match op {
            "eq" => Test::Eq(literal(node).map_err(at)?),
            "in" => Test::In(literals(op, node).map_err(at)?),
            "anything_but" => Test::AnythingBut(match node {
                Node::Array(_) => literals(op, node).map_err(at)?,
                single => vec![literal(single).map_err(at)?],
            }),
            "eq_ignore_case" => Test::EqIgnoreCase(string(op)?),
            "in_ignore_case" => Test::InIgnoreCase(strings(op, value)?),
            "prefix" => Test::Prefix(string(op)?),
            "suffix" => Test::Suffix(string(op)?),
            "contains" => match literal(node).map_err(at)? {
                Literal::Str(s) if s.is_empty() => {
                    return Err(at(
                        "`contains = \"\"` holds for every string; use { exists = true }"
                            .to_owned(),
                    ));
                }
                part => Test::Contains(part),
            },
            "wildcard" => Test::Wildcard(Wildcard::parse(&string(op)?).map_err(at)?),
            "cidr" => {
                let nets = strings(op, value)?;
                let spans: Vec<Range<usize>> = match node {
                    Node::Array(items) => items.iter().map(Spanned::span).collect(),
                    _ => vec![value.span()],
                };
                let mut parsed = Vec::new();
                for (net, span) in nets.iter().zip(spans) {
                    parsed.push(Networks::parse_one(net).map_err(|m| (span, m))?);
                }
                Test::Cidr(Networks(parsed))
            }
            "matches" => {
                let pattern = string(op)?;
                Test::Matches(Pattern::parse(&pattern).map_err(|(offset, m)| {
                    let start = offset.map_or(value.span().start, |o| {
                        offset_in_source(self.text, &value.span(), o)
                    });
                    (start..value.span().end, m)
                })?)
            }
            "exists" => Test::Exists(node.to_toml().as_bool().ok_or_else(|| {
                at(format!(
                    "`exists` takes true or false, found {}",
                    node.type_str()
                ))
            })?),
            "gt" | "gte" | "lt" | "lte" => {
                let literal = literal(node).map_err(at)?;
                if matches!(literal, Literal::Bool(_)) {
                    return Err(at(format!(
                        "`{op}` compares numbers or strings, not booleans"
                    )));
                }
                let comparison = match op {
                    "gt" => Comparison::Gt,
                    "gte" => Comparison::Gte,
                    "lt" => Comparison::Lt,
                    _ => Comparison::Lte,
                };
                Test::Compare(comparison, literal)
            }
            "not" => {
                Test::Not(Box::new(self.test("not", value).map_err(|p| {
                    (p.span.unwrap_or_else(|| value.span()), p.message)
                })?))
            }
            other => {
                return Err(at(format!(
                    "unknown operator `{other}`; operators are {}. To test a nested field, \
                     quote the whole path as the key: \"data.a.b\" = ...",
                    list(OPERATORS)
                )));
            }
        })
    }
}
