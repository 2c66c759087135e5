//! The routing table: `routes.toml` parsed with positions ([`file`]), validated and
//! compiled ([`compile`]) into an immutable, indexed [`RoutingTable`], checked against
//! its own `[[test]]` cases ([`cases`]).

pub mod archive;
pub mod cases;
pub mod compile;
pub mod condition;
pub mod error;
pub mod event;
pub mod explain;
pub mod file;
mod members;
pub mod pattern;
pub mod retry;
pub mod shape;
pub mod table;
pub mod template;
pub mod trie;

pub use archive::Archive;
pub use error::{RouteError, RouteErrors};
pub use event::EventDoc;
pub use explain::{Explanation, Verdict};
pub use table::{Decision, Route, RoutingTable, Target};

/// Parses, validates and compiles `text` (the content of `file_name`) and runs its
/// `[[test]]` cases. Every problem is reported, each with file:line:col.
pub fn load(file_name: &str, text: &str) -> Result<RoutingTable, RouteErrors> {
    let locate = |problems| RouteErrors::locate(file_name, text, problems);
    let (spec, mut problems) = file::parse(text).map_err(locate)?;
    // Compile what could be read even when some entries could not, to report all.
    let table = match compile::compile(&spec, text) {
        Ok(table) if problems.is_empty() => table,
        Ok(_) => return Err(locate(problems)),
        Err(more) => {
            problems.extend(more);
            return Err(locate(problems));
        }
    };
    let failures = cases::run(&table, &spec.tests);
    if failures.is_empty() {
        Ok(table)
    } else {
        Err(locate(failures))
    }
}

#[cfg(test)]
mod reading_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod where_tests;
