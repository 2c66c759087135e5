//! Errors in a routes file, each with the file, line and column it points at.

use std::fmt;
use std::ops::Range;

/// One problem in a routes file, located by a byte span of the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range in the file the problem is about; `None` for the file as a whole.
    pub span: Option<Range<usize>>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    /// A problem at `span`.
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            span: Some(span),
            message: message.into(),
        }
    }

    /// A problem with no better position than the whole file.
    pub fn file(message: impl Into<String>) -> Self {
        Self {
            span: None,
            message: message.into(),
        }
    }
}

/// One problem in a routes file, with its position as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteError {
    /// The file, as given on the command line or in `ROUTES_FILE`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in a routes file (never empty), in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RouteErrors(pub Vec<RouteError>);

impl fmt::Display for RouteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "{count} error{} in routing table",
            if count == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            write!(f, "\n  {error}")?;
        }
        Ok(())
    }
}

impl RouteErrors {
    /// Locates `problems` in `text` (the content of `file`), sorted by position.
    pub fn locate(file: &str, text: &str, problems: Vec<Problem>) -> Self {
        let mut errors: Vec<(usize, RouteError)> = problems
            .into_iter()
            .map(|problem| {
                let offset = problem.span.map_or(0, |s| s.start);
                let (line, column) = line_column(text, offset);
                let error = RouteError {
                    file: file.to_owned(),
                    line,
                    column,
                    message: problem.message,
                };
                (offset, error)
            })
            .collect();
        errors.sort_by_key(|(offset, _)| *offset);
        Self(errors.into_iter().map(|(_, e)| e).collect())
    }

    /// The first error (there always is one).
    pub fn first(&self) -> Option<&RouteError> {
        self.0.first()
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn an_offset_inside_a_character_does_not_panic() {
        assert_eq!(line_column("é", 1), (1, 1));
    }

    #[test]
    fn errors_are_sorted_by_position_and_listed_one_per_line() {
        let errors = RouteErrors::locate(
            "routes.toml",
            "x = 1\ny = 2\n",
            vec![Problem::at(6..7, "second"), Problem::at(0..1, "first")],
        );
        assert_eq!(
            errors.to_string(),
            "2 errors in routing table\n  routes.toml:1:1: first\n  routes.toml:2:1: second"
        );
    }
}
