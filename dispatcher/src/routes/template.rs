//! Templates of what a route sends: an exchange target's `routing_key` and the values of
//! a route's `headers`, e.g. `audit.{data.country|unknown}.{type}`.
//!
//! `{path}` is replaced by the value at that path of the event (the same paths and the
//! same lookup as `where` conditions: [`Path`]); `{path|default}` uses `default` when the
//! event has no value there (absent or `null`). `{{` and `}}` are a literal brace. A
//! template is compiled once, when the table loads; rendering one costs a lookup per
//! field and one string.

use std::fmt;

use serde_json::Value;

use super::condition::Path;
use super::event::EventDoc;

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// As written.
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(Field),
}

/// One `{path}` or `{path|default}`.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    /// The path as written.
    key: String,
    path: Path,
    default: Option<String>,
}

/// Why a template was refused: what is wrong and the byte offset in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset in the template text.
    pub offset: usize,
    pub message: String,
}

/// A field the event lacks and whose placeholder has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    /// The path, as written in the template.
    pub path: String,
    /// The template, as written.
    pub template: String,
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template `{}` needs `{}`, which the event lacks (write `{{{}|default}}` to allow that)",
            self.template, self.path, self.path
        )
    }
}

impl Template {
    /// Compiles `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((at, c)) = rest.next() {
            match c {
                '{' if rest.peek().is_some_and(|&(_, n)| n == '{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().is_some_and(|&(_, n)| n == '}') => {
                    rest.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(TemplateError {
                        offset: at,
                        message: "a `}` with no `{` before it (write `}}` for a literal brace)"
                            .to_owned(),
                    });
                }
                '{' => {
                    let inner = &text[at + 1..];
                    let Some(end) = inner.find('}') else {
                        return Err(TemplateError {
                            offset: at,
                            message: "a `{` that is never closed with `}` (write `{{` for a literal brace)".to_owned(),
                        });
                    };
                    let field = Field::parse(&inner[..end], at)?;
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field));
                    // Skip the field's characters and its `}`.
                    while rest.next_if(|&(i, _)| i <= at + 1 + end).is_some() {}
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self {
            source: text.to_owned(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether it has no field (its text is its value).
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The paths of its fields that have no default, as written.
    pub fn required_fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) if f.default.is_none() => Some(f.key.as_str()),
            _ => None,
        })
    }

    /// The text for `event`, or the first field it lacks that has no default.
    pub fn render(&self, event: &EventDoc<'_>) -> Result<String, MissingField> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => match field.path.lookup(event) {
                    Some(value) if !value.is_null() => push_value(&mut out, value.as_ref()),
                    _ => match &field.default {
                        Some(default) => out.push_str(default),
                        None => {
                            return Err(MissingField {
                                path: field.key.clone(),
                                template: self.source.clone(),
                            });
                        }
                    },
                },
            }
        }
        Ok(out)
    }
}

impl Field {
    /// `path` or `path|default`; `at` is the offset of the `{` in the template.
    fn parse(inside: &str, at: usize) -> Result<Self, TemplateError> {
        let (key, default) = match inside.split_once('|') {
            Some((key, default)) => (key, Some(default.to_owned())),
            None => (inside, None),
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(TemplateError {
                offset: at,
                message: "an empty `{}`: name a path, e.g. `{data.country}`".to_owned(),
            });
        }
        let path = Path::parse(key).map_err(|message| TemplateError {
            offset: at + 1,
            message,
        })?;
        Ok(Self {
            key: key.to_owned(),
            path,
            default,
        })
    }
}

/// A string as it is, anything else as its JSON text.
fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: Value) -> EventDoc<'static> {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        EventDoc::from_json(map, None)
    }

    fn render(template: &str, value: Value) -> Result<String, MissingField> {
        Template::parse(template).unwrap().render(&event(value))
    }

    #[test]
    fn fields_are_replaced_by_the_events_values() {
        let e = json!({"type": "user.created", "data": {"country": "FR", "age": 30}});
        assert_eq!(
            render("audit.{data.country}.{type}", e.clone()).unwrap(),
            "audit.FR.user.created"
        );
        assert_eq!(render("{data.age}", e).unwrap(), "30");
    }

    #[test]
    fn a_missing_or_null_field_uses_its_default() {
        let e = json!({"type": "t", "data": {"country": null}});
        assert_eq!(
            render("a.{data.country|unknown}.{subject|}", e).unwrap(),
            "a.unknown."
        );
    }

    #[test]
    fn a_missing_field_without_default_names_the_path() {
        let err = render("a.{data.country}", json!({"type": "t"})).unwrap_err();
        assert_eq!(err.path, "data.country");
        assert!(
            err.to_string().contains("`{data.country|default}`"),
            "{err}"
        );
    }

    #[test]
    fn doubled_braces_are_literal_braces() {
        let t = Template::parse("{{x}}.{type}").unwrap();
        assert_eq!(t.render(&event(json!({"type": "t"}))).unwrap(), "{x}.t");
        assert!(Template::parse("{{}}").unwrap().is_static());
    }

    #[test]
    fn headers_use_the_same_paths_as_conditions() {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(
            "x-tenant".into(),
            lapin::types::AMQPValue::LongString("acme".into()),
        );
        let Value::Object(map) = json!({"type": "t"}) else {
            unreachable!()
        };
        let doc = EventDoc::from_json(map, Some(&headers));
        let t = Template::parse("{headers.x-tenant}").unwrap();
        assert_eq!(t.render(&doc).unwrap(), "acme");
    }

    #[test]
    fn a_static_template_is_its_text() {
        let t = Template::parse("audit.fr").unwrap();
        assert!(t.is_static());
        assert_eq!(t.required_fields().count(), 0);
        assert_eq!(t.render(&event(json!({}))).unwrap(), "audit.fr");
    }

    #[test]
    fn required_fields_are_those_without_default() {
        let t = Template::parse("{data.a}.{data.b|x}.{type}").unwrap();
        assert_eq!(t.required_fields().collect::<Vec<_>>(), ["data.a", "type"]);
    }

    #[test]
    fn bad_templates_are_refused_with_their_offset() {
        let err = Template::parse("a.{data.x").unwrap_err();
        assert_eq!(err.offset, 2);
        assert!(err.message.contains("never closed"), "{}", err.message);
        let err = Template::parse("a}").unwrap_err();
        assert_eq!(err.offset, 1);
        let err = Template::parse("x{}").unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(err.message.contains("empty"), "{}", err.message);
        let err = Template::parse("x.{data..y}").unwrap_err();
        assert_eq!(err.offset, 3);
        assert!(err.message.contains("empty field name"), "{}", err.message);
    }

    #[test]
    fn multibyte_text_around_fields_is_kept() {
        assert_eq!(render("é.{type}.ü", json!({"type": "t"})).unwrap(), "é.t.ü");
    }
}
