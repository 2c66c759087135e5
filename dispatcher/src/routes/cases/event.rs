//! A `[[test]]` event as a message: its attributes, AMQP headers and properties.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Map, Value};

/// A test event's attributes, and its AMQP properties with its `headers`.
pub(super) fn read_event(
    event: &toml::Table,
) -> Result<(Map<String, Value>, BasicProperties), String> {
    let mut attributes = Map::new();
    let mut headers = FieldTable::default();
    let mut properties = BasicProperties::default();
    for (key, value) in event {
        match key.as_str() {
            "headers" => {
                let toml::Value::Table(table) = value else {
                    return Err("`headers` in a test event must be a table".to_owned());
                };
                for (name, value) in table {
                    headers.insert(name.as_str().into(), to_amqp(value));
                }
            }
            "properties" => {
                let toml::Value::Table(table) = value else {
                    return Err("`properties` in a test event must be a table".to_owned());
                };
                for (name, value) in table {
                    properties = with_property(properties, name, value)?;
                }
            }
            _ => {
                attributes.insert(key.clone(), to_json(value));
            }
        }
    }
    Ok((attributes, properties.with_headers(headers)))
}

/// `properties` with one more AMQP property, given as a TOML value (a `[[test]]`
/// event's `properties`, or `dispatcher explain --property`).
pub fn with_property(
    properties: BasicProperties,
    name: &str,
    value: &toml::Value,
) -> Result<BasicProperties, String> {
    let text = || {
        value
            .as_str()
            .map(Into::into)
            .ok_or_else(|| format!("`properties.{name}` takes a string"))
    };
    let number = |max: i64| {
        value
            .as_integer()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| format!("`properties.{name}` takes an integer from 0 to {max}"))
    };
    Ok(match name {
        "app_id" => properties.with_app_id(text()?),
        "content_type" => properties.with_content_type(text()?),
        "correlation_id" => properties.with_correlation_id(text()?),
        "reply_to" => properties.with_reply_to(text()?),
        "user_id" => properties.with_user_id(text()?),
        "message_id" => properties.with_message_id(text()?),
        "type" => properties.with_type(text()?),
        "expiration" => properties.with_expiration(text()?),
        "priority" => properties.with_priority(u8::try_from(number(255)?).unwrap_or(u8::MAX)),
        "timestamp" => {
            properties.with_timestamp(u64::try_from(number(i64::MAX)?).unwrap_or_default())
        }
        other => {
            return Err(format!(
                "unknown AMQP property `{other}`; the properties are `app_id`, \
                 `content_type`, `correlation_id`, `reply_to`, `priority`, `user_id`, \
                 `message_id`, `type`, `timestamp` or `expiration`"
            ));
        }
    })
}

/// A TOML value as JSON (date-times become their RFC 3339 text).
pub fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        toml::Value::Table(table) => {
            Value::Object(table.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn to_amqp(value: &toml::Value) -> AMQPValue {
    match value {
        toml::Value::Integer(i) => AMQPValue::LongLongInt(*i),
        toml::Value::Float(f) => AMQPValue::Double(*f),
        toml::Value::Boolean(b) => AMQPValue::Boolean(*b),
        toml::Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        other => AMQPValue::LongString(to_json(other).to_string().into()),
    }
}
