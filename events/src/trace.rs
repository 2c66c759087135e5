//! The W3C Trace Context `traceparent` (version 00): how one HTTP request is followed
//! through the events it causes. user-service takes it from the request (or starts one),
//! stores it with the event, and every hop logs its `trace_id`.

use std::fmt;
use std::str::FromStr;

use lapin::BasicProperties;

use crate::amqp::header_string;

/// Name of the HTTP header and of the AMQP header that carry the trace.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A parsed `traceparent`: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent {0:?}: expected 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero")]
pub struct TraceParentError(String);

impl TraceParent {
    /// A new trace (random trace id and span id, sampled).
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            parent_id: nonzero(rand::random()),
            flags: 1,
        }
    }

    /// The same trace, with a new span id: what a hop passes on.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            parent_id: nonzero(rand::random()),
            ..*self
        }
    }

    /// The 32-hex-digit trace id, the field every log line of the trace carries.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The trace of an incoming AMQP message: the `traceparent` header, if well-formed.
    pub fn from_amqp(properties: &BasicProperties) -> Option<Self> {
        let headers = properties.headers().as_ref()?;
        header_string(headers, TRACEPARENT_HEADER)?.parse().ok()
    }
}

fn nonzero<T: Default + PartialEq + From<u8>>(value: T) -> T {
    // An all-zero id is invalid in W3C Trace Context.
    if value == T::default() {
        T::from(1)
    } else {
        value
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TraceParentError(s.chars().take(80).collect());
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [version, trace, parent, flags] = parts.as_slice() else {
            return Err(bad());
        };
        let hex = |part: &str, len: usize| {
            (part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then_some(())
                .ok_or_else(bad)
        };
        hex(version, 2)?;
        hex(trace, 32)?;
        hex(parent, 16)?;
        hex(flags, 2)?;
        if *version == "ff" {
            return Err(bad());
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| bad())?;
        let parent_id = u64::from_str_radix(parent, 16).map_err(|_| bad())?;
        let flags = u8::from_str_radix(flags, 16).map_err(|_| bad())?;
        if trace_id == 0 || parent_id == 0 {
            return Err(bad());
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_w3c_example_parses_and_prints_back() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp: TraceParent = text.parse().unwrap();
        assert_eq!(tp.to_string(), text);
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_span() {
        let root = TraceParent::new_root();
        let child = root.child();
        assert_eq!(root.trace_id(), child.trace_id());
        assert_ne!(root.to_string(), child.to_string());
    }

    proptest! {
        #[test]
        fn any_generated_traceparent_round_trips(_seed in 0u8..50) {
            let tp = TraceParent::new_root();
            prop_assert_eq!(tp.to_string().parse::<TraceParent>().unwrap(), tp);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
            let _ = text.parse::<TraceParent>();
        }
    }
}
