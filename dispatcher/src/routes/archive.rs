//! `[archive]`: the stream every consumed event is appended to, checked and compiled.
//! Its retention (`max_age`, `max_bytes`) becomes the stream's declaration arguments.

use std::fmt;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString};
use serde::Serialize;
use serde_spanned::Spanned;

use super::error::Problem;
use super::file::ArchiveSpec;
use super::table::Target;

/// Longest queue name AMQP 0-9-1 allows (a short string).
const MAX_NAME: usize = 255;

/// A compiled `[archive]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    /// The stream queue's name.
    pub stream: String,
    /// How long the stream keeps events (`x-max-age`); `None`: no age limit.
    #[serde(rename = "max_age_seconds")]
    pub max_age: Option<Duration>,
    /// How many bytes the stream keeps (`x-max-length-bytes`); `None`: no size limit.
    pub max_bytes: Option<u64>,
}

/// A retention that differs between the running archive and a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionChange {
    /// The running retention, as text.
    pub from: String,
    /// The new one.
    pub to: String,
}

impl Archive {
    /// The `queue.declare` arguments of the stream: `x-queue-type = stream` and the
    /// retention limits that are set.
    pub fn arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("stream")),
        );
        if let Some(age) = self.max_age {
            args.insert(
                "x-max-age".into(),
                AMQPValue::LongString(LongString::from(format!("{}s", age.as_secs()))),
            );
        }
        if let Some(bytes) = self.max_bytes {
            args.insert(
                "x-max-length-bytes".into(),
                AMQPValue::LongLongInt(i64::try_from(bytes).unwrap_or(i64::MAX)),
            );
        }
        args
    }

    /// `Some` when `new` archives to the same stream with another retention (a stream's
    /// arguments cannot change once declared).
    pub fn retention_change(&self, new: &Archive) -> Option<RetentionChange> {
        (self.stream == new.stream
            && (self.max_age != new.max_age || self.max_bytes != new.max_bytes))
            .then(|| RetentionChange {
                from: self.retention(),
                to: new.retention(),
            })
    }

    /// `max_age = 7d, max_bytes = 5GB`, as it would be written.
    pub fn retention(&self) -> String {
        let age = self.max_age.map_or_else(
            || "none".to_owned(),
            |age| humantime::format_duration(age).to_string(),
        );
        let bytes = self.max_bytes.map_or_else(
            || "none".to_owned(),
            |bytes| bytesize::ByteSize(bytes).to_string(),
        );
        format!("max_age = {age}, max_bytes = {bytes}")
    }
}

impl fmt::Display for Archive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {} ({})", self.stream, self.retention())
    }
}

/// Checks `[archive]`: the stream is named, is not one of the table's own queues
/// (`taken`: source, unrouted, dead_letter) nor a target, and its limits parse.
pub(super) fn compile(
    spec: &Spanned<ArchiveSpec>,
    taken: &[&String],
    targets: &[Target],
    problems: &mut Vec<Problem>,
) -> Option<Archive> {
    let before = problems.len();
    let spec_ref = spec.get_ref();
    let stream = spec_ref.stream.get_ref().trim().to_owned();
    let span = spec_ref.stream.span();
    if stream.is_empty() {
        problems.push(Problem::at(
            span.clone(),
            "the archive stream name is empty",
        ));
    } else if stream.len() > MAX_NAME {
        problems.push(Problem::at(
            span.clone(),
            format!(
                "the archive stream name is {} bytes, over AMQP's limit of {MAX_NAME}",
                stream.len()
            ),
        ));
    } else if taken.iter().any(|q| **q == stream) {
        problems.push(Problem::at(
            span.clone(),
            format!("`{stream}` is already the source, unrouted or dead_letter queue; the archive needs a stream of its own"),
        ));
    } else if targets.contains(&Target::Queue(stream.clone())) {
        problems.push(Problem::at(
            span.clone(),
            format!("`{stream}` is a route's target; the archive needs a stream of its own"),
        ));
    }
    let max_age =
        spec_ref.max_age.as_ref().and_then(|age| {
            match events::duration::parse_duration(age.get_ref()) {
                Ok(d) if d.as_secs() >= 1 => Some(d),
                Ok(_) => {
                    problems.push(Problem::at(age.span(), "`max_age` must be at least 1s"));
                    None
                }
                Err(error) => {
                    problems.push(Problem::at(age.span(), format!("`max_age`: {error}")));
                    None
                }
            }
        });
    let max_bytes = spec_ref.max_bytes.as_ref().and_then(|bytes| {
        match bytes.get_ref().trim().parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() > 0 => Some(size.as_u64()),
            Ok(_) => {
                problems.push(Problem::at(bytes.span(), "`max_bytes` must be more than 0"));
                None
            }
            Err(error) => {
                problems.push(Problem::at(
                    bytes.span(),
                    format!("`max_bytes`: `{}` is not a size ({error}): write e.g. `5GB`, `500MB` or `2GiB`", bytes.get_ref()),
                ));
                None
            }
        }
    });
    (problems.len() == before).then_some(Archive {
        stream,
        max_age,
        max_bytes,
    })
}

#[cfg(test)]
mod tests {
    use crate::routes;

    const BASE: &str = "[[route]]\nname = \"a\"\nevent = \"x\"\nto = [\"q\"]\n";

    fn load(archive: &str) -> Result<routes::RoutingTable, String> {
        routes::load("t.toml", &format!("{BASE}{archive}")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_archive_compiles_with_its_retention_as_stream_arguments() {
        let table = load(
            "[archive]\nstream = \"dispatch.archive\"\nmax_age = \"7d\"\nmax_bytes = \"5GB\"\n",
        )
        .unwrap();
        let archive = table.archive.unwrap();
        assert_eq!(archive.stream, "dispatch.archive");
        assert_eq!(
            archive.max_age,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(archive.max_bytes, Some(5_000_000_000));
        let args = archive.arguments();
        let args = args.inner();
        assert_eq!(
            args.get("x-max-age"),
            Some(&lapin::types::AMQPValue::LongString("604800s".into()))
        );
        assert_eq!(
            args.get("x-queue-type"),
            Some(&lapin::types::AMQPValue::LongString("stream".into()))
        );
    }

    #[test]
    fn no_archive_table_means_no_archive() {
        assert!(load("").unwrap().archive.is_none());
    }

    #[test]
    fn retention_is_optional() {
        let archive = load("[archive]\nstream = \"s\"\n")
            .unwrap()
            .archive
            .unwrap();
        assert_eq!((archive.max_age, archive.max_bytes), (None, None));
        assert!(!archive.arguments().inner().contains_key("x-max-age"));
    }

    #[test]
    fn a_bad_size_is_refused_with_its_position() {
        let error = load("[archive]\nstream = \"s\"\nmax_bytes = \"lots\"\n").unwrap_err();
        assert!(error.contains("t.toml:7:13"), "{error}");
        assert!(error.contains("not a size"), "{error}");
    }

    #[test]
    fn a_bad_age_is_refused() {
        let error = load("[archive]\nstream = \"s\"\nmax_age = \"forever\"\n").unwrap_err();
        assert!(error.contains("`max_age`"), "{error}");
    }

    #[test]
    fn the_stream_cannot_be_a_target_or_the_source() {
        let error = load("[archive]\nstream = \"q\"\n").unwrap_err();
        assert!(error.contains("is a route's target"), "{error}");
        let error = load("[archive]\nstream = \"queue_dispatch\"\n").unwrap_err();
        assert!(error.contains("of its own"), "{error}");
    }

    #[test]
    fn an_unknown_archive_key_is_refused() {
        let error = load("[archive]\nstream = \"s\"\nmax_count = 3\n").unwrap_err();
        assert!(error.contains("max_count"), "{error}");
    }

    #[test]
    fn a_retention_change_is_detected_only_for_the_same_stream() {
        let a = load("[archive]\nstream = \"s\"\nmax_age = \"7d\"\n")
            .unwrap()
            .archive
            .unwrap();
        let b = load("[archive]\nstream = \"s\"\nmax_age = \"1d\"\n")
            .unwrap()
            .archive
            .unwrap();
        let c = load("[archive]\nstream = \"t\"\nmax_age = \"1d\"\n")
            .unwrap()
            .archive
            .unwrap();
        let change = a.retention_change(&b).unwrap();
        assert_eq!(change.from, "max_age = 7days, max_bytes = none");
        assert_eq!(change.to, "max_age = 1day, max_bytes = none");
        assert!(a.retention_change(&c).is_none());
        assert!(a.retention_change(&a.clone()).is_none());
    }
}
