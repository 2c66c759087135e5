//! The one grammar of every duration setting in the workspace, for flags and environment
//! variables alike.
//!
//! A duration is one or more `<number><unit>` parts, spaces allowed between them:
//! `250ms`, `2s`, `0.5s`, `90m`, `1h30m`, `1h 30m`, `7d`, `2weeks`. A number may have a
//! decimal part (`1.5h`). A bare number counts as seconds (`3`, `0.5`, `0`). Units:
//! `ns`, `us`, `ms`, `s`/`sec`, `m`/`min`, `h`/`hr`, `d`/`days`, `w`/`weeks`, `M`/`months`,
//! `y`/`years` (and their singular and plural spellings); `m` is minutes, `M` months.
//!
//! The parts are read by [`humantime`]; this module only adds bare numbers and an error
//! that says what to write.

use std::time::Duration;

/// What [`parse_duration`]'s error suggests writing.
const EXAMPLES: &str =
    "write e.g. `7d`, `1h30m`, `90m`, `2s`, `0.5s` or `500ms` (a bare number counts as seconds)";

/// Why a duration setting was refused; its message says what to write instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{text}` is not a duration ({reason}): {EXAMPLES}")]
pub struct DurationError {
    text: String,
    reason: humantime::DurationError,
}

/// Parses a duration setting (see the module documentation for the grammar). Usable
/// as a clap `value_parser`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let parsed = if is_bare_number(trimmed) {
        humantime::parse_duration(&format!("{trimmed}s"))
    } else {
        humantime::parse_duration(trimmed)
    };
    parsed.map_err(|reason| DurationError {
        text: text.to_owned(),
        reason,
    })
}

/// Digits with at most one decimal point, starting with a digit: `3`, `0.5`.
fn is_bare_number(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.matches('.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn parses(text: &str, expected: Duration) {
        assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
    }

    #[test]
    fn the_dispatchers_spellings_still_parse() {
        parses("500ms", ms(500));
        parses("100ms", ms(100));
        parses("2s", secs(2));
        parses("5s", secs(5));
        parses("1m", secs(60));
        parses("0.5s", ms(500));
        parses("2 s", secs(2));
    }

    #[test]
    fn the_user_services_spellings_still_parse() {
        parses("7d", secs(7 * 86_400));
        parses("24h", secs(86_400));
        parses("90m", secs(5_400));
        parses(" 30s ", secs(30));
        parses("250ms", ms(250));
        parses("0s", Duration::ZERO);
        parses("1h30m", secs(5_400));
        parses("1s500ms", ms(1_500));
    }

    #[test]
    fn a_bare_number_counts_as_seconds() {
        parses("3", secs(3));
        parses("0", Duration::ZERO);
        parses("0.5", ms(500));
        parses(" 10 ", secs(10));
    }

    #[test]
    fn hours_fractions_spaces_and_long_unit_names_parse() {
        parses("1h", secs(3_600));
        parses("1.5h", secs(5_400));
        parses("1h 30m", secs(5_400));
        parses("7days", secs(7 * 86_400));
        parses("2weeks", secs(14 * 86_400));
        parses("2min", secs(120));
        parses("3sec", secs(3));
        parses("250us", Duration::from_micros(250));
    }

    #[test]
    fn nonsense_is_refused_with_what_to_write() {
        for bad in [
            "",
            " ",
            "soon",
            "d",
            "7x",
            "-1s",
            "s10",
            "1.",
            "1.2.3",
            "2h!",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err().to_string();
            assert!(err.contains("is not a duration"), "{bad:?}: {err}");
            assert!(err.contains("e.g. `7d`"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_error_names_the_input_and_the_reason() {
        let err = parse_duration("7x").unwrap_err().to_string();
        assert!(err.starts_with("`7x` is not a duration"), "{err}");
        assert!(err.contains("unknown time unit \"x\""), "{err}");
    }

    #[test]
    fn it_works_as_a_clap_value_parser() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[arg(long, value_parser = parse_duration)]
            every: Duration,
        }

        let cli = Cli::try_parse_from(["x", "--every", "1h30m"]).unwrap();
        assert_eq!(cli.every, secs(5_400));
        let err = Cli::try_parse_from(["x", "--every", "soon"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("e.g. `7d`"), "{err}");
    }
}
