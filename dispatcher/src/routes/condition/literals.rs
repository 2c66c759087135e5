//! The values operators take: literals, lists of literals, lists of strings.

use std::ops::Range;

use serde_spanned::Spanned;

use super::Literal;
use super::node::Node;

/// A non-empty list of strings, or one string (as a list of one).
pub(super) fn strings(
    op: &str,
    value: &Spanned<Node>,
) -> Result<Vec<String>, (Range<usize>, String)> {
    let one = |item: &Spanned<Node>| {
        item.get_ref().as_str().map(str::to_owned).ok_or_else(|| {
            (
                item.span(),
                format!("`{op}` takes strings, found {}", item.get_ref().type_str()),
            )
        })
    };
    match value.get_ref() {
        Node::Array(items) if items.is_empty() => Err((
            value.span(),
            format!("`{op} = []` can never hold; list at least one value"),
        )),
        Node::Array(items) => items.iter().map(one).collect(),
        _ if op == "in_ignore_case" => Err((
            value.span(),
            format!(
                "`{op}` takes a list of strings, found {}",
                value.get_ref().type_str()
            ),
        )),
        _ => one(value).map(|s| vec![s]),
    }
}

pub(super) fn literals(op: &str, node: &Node) -> Result<Vec<Literal>, String> {
    let Node::Array(items) = node else {
        return Err(format!(
            "`{op}` takes a list of values, found {}",
            node.type_str()
        ));
    };
    if items.is_empty() {
        return Err(format!(
            "`{op} = []` can never hold; list at least one value"
        ));
    }
    items.iter().map(|i| literal(i.get_ref())).collect()
}

pub(super) fn literal(node: &Node) -> Result<Literal, String> {
    match node {
        Node::Scalar(toml::Value::String(s)) => Ok(Literal::Str(s.clone())),
        Node::Scalar(toml::Value::Integer(i)) => Ok(Literal::Int(*i)),
        Node::Scalar(toml::Value::Float(f)) => Ok(Literal::Float(*f)),
        Node::Scalar(toml::Value::Boolean(b)) => Ok(Literal::Bool(*b)),
        Node::Scalar(toml::Value::Datetime(d)) => Err(format!(
            "a TOML date-time ({d}) is not a condition value; write it as a string, \
             e.g. {{ gte = \"{d}\" }}, to compare as text"
        )),
        Node::Array(_) | Node::Scalar(toml::Value::Array(_)) => Err(
            "a list is not a value to compare with; to accept one of several values write { in = [...] }"
                .to_owned(),
        ),
        Node::Table(_) | Node::Scalar(toml::Value::Table(_)) => {
            Err("expected a value, found a table".to_owned())
        }
    }
}
