//! Checks of a service's OpenAPI document for its tests: that it is a valid OpenAPI 3.1
//! document whose references all resolve, which operations it lists, which routes a
//! README documents, and which assets a docs page loads.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// An operation: upper-case method and path template (`GET /users/{id}`).
pub type Operation = (String, String);

/// The methods an OpenAPI path item may hold, lower-case as in the document.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every problem of `document` (empty when it is valid): it must parse as an OpenAPI 3.1
/// document (the `oas3` crate's types), every `$ref` must resolve inside it, every
/// `{param}` of a path must be declared as a path parameter, operation ids must be
/// unique, and every operation must describe a success and its error bodies as JSON.
pub fn problems(document: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match oas3::from_json(document) {
        // `oas3` reads 3.1 only: any other version is an error here.
        Ok(spec) => {
            if let Err(error) = spec.validate_version() {
                problems.push(format!("OpenAPI version: {error}"));
            }
        }
        Err(error) => problems.push(format!("not an OpenAPI 3.1 document: {error}")),
    }
    let Ok(root) = serde_json::from_str::<Value>(document) else {
        return problems;
    };
    unresolved_refs(&root, &root, "", &mut problems);
    let mut ids = BTreeMap::<String, usize>::new();
    for (path, method, operation) in operations_of(&root) {
        let at = format!("{} {path}", method.to_uppercase());
        path_parameters(&path, operation, &at, &mut problems);
        match operation["operationId"].as_str() {
            Some(id) => *ids.entry(id.to_owned()).or_default() += 1,
            None => problems.push(format!("{at}: no operationId")),
        }
        responses(operation, &at, &mut problems);
    }
    for (id, count) in ids {
        if count > 1 {
            problems.push(format!("operationId `{id}` is used {count} times"));
        }
    }
    problems
}

/// The operations `document` lists.
pub fn operations(document: &Value) -> BTreeSet<Operation> {
    operations_of(document)
        .map(|(path, method, _)| (method.to_uppercase(), path))
        .collect()
}

/// The routes a README documents: every `` `METHOD /path` `` in it (a heading, a table
/// cell, a sentence), with `?query` cut off (`` `GET /users?limit=` `` is `GET /users`).
pub fn readme_routes(readme: &str) -> BTreeSet<Operation> {
    let mut routes = BTreeSet::new();
    for quoted in readme.split('`').skip(1).step_by(2) {
        let Some((method, path)) = quoted.split_once(' ') else {
            continue;
        };
        let is_method = ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method);
        if is_method && path.starts_with('/') && !path.contains(' ') {
            let path = path.split('?').next().unwrap_or(path);
            routes.insert((method.to_owned(), path.to_owned()));
        }
    }
    routes
}

/// The `src` and `href` attribute values of an HTML page: what a browser loads from it.
pub fn page_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                links.push(rest[..end].to_owned());
            }
        }
    }
    links
}

/// Whether `link` leaves the server: a scheme (`https:`, `data:`…) or a
/// protocol-relative `//host/…`.
pub fn is_external(link: &str) -> bool {
    link.starts_with("//") || link.split('/').next().is_some_and(|s| s.contains(':'))
}

fn operations_of(root: &Value) -> impl Iterator<Item = (String, &str, &Value)> {
    root["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter_map(move |method| item.get(*method).map(|op| (path.clone(), *method, op)))
        })
}

fn unresolved_refs(root: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                if name == "$ref" {
                    let target = member.as_str().and_then(|r| r.strip_prefix('#'));
                    if target.and_then(|pointer| root.pointer(pointer)).is_none() {
                        problems.push(format!("{at}: `$ref` {member} does not resolve"));
                    }
                } else {
                    unresolved_refs(root, member, &format!("{at}/{name}"), problems);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                unresolved_refs(root, item, &format!("{at}/{index}"), problems);
            }
        }
        _ => {}
    }
}

fn path_parameters(path: &str, operation: &Value, at: &str, problems: &mut Vec<String>) {
    let declared: BTreeSet<&str> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path")
        .filter_map(|p| p["name"].as_str())
        .collect();
    let templated: BTreeSet<&str> = path
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    if declared != templated {
        problems.push(format!(
            "{at}: path parameters {declared:?} do not match the template {templated:?}"
        ));
    }
}

fn responses(operation: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(responses) = operation["responses"].as_object() else {
        problems.push(format!("{at}: no responses"));
        return;
    };
    if !responses.keys().any(|status| status.starts_with('2')) {
        problems.push(format!("{at}: no success response"));
    }
    for (status, response) in responses {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && response["content"]["application/json"]["schema"].is_null() {
            problems.push(format!("{at}: the {status} response has no JSON body"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_routes_are_the_quoted_method_and_path_pairs() {
        let readme = "### `POST /users` — create\n| `GET /users?limit=&after=` | x |\n\
                      run `cargo test` and `GET /users/{id}`; not `GET users` nor `GET /a b`";
        let routes: Vec<_> = readme_routes(readme).into_iter().collect();
        let expected = [
            ("GET", "/users"),
            ("GET", "/users/{id}"),
            ("POST", "/users"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(routes, expected);
    }

    #[test]
    fn page_links_are_the_src_and_href_values() {
        let html = r#"<link href="./a.css"><script src="b.js"></script><a href="https://x.io">"#;
        assert_eq!(page_links(html), ["b.js", "./a.css", "https://x.io"]);
    }

    #[test]
    fn external_links_are_those_with_a_scheme_or_a_host() {
        for link in [
            "https://x.io/a.js",
            "http://x",
            "//cdn.x/a.js",
            "data:text/css,",
        ] {
            assert!(is_external(link), "{link}");
        }
        for link in ["./a.js", "b.css", "/docs/c.png", "d/e:f.js"] {
            assert!(!is_external(link), "{link}");
        }
    }

    #[test]
    fn a_minimal_valid_document_has_no_problems() {
        let document = serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a/{id}": {"get": {
                "operationId": "get_a",
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "schema": {"type": "integer"}}],
                "responses": {
                    "200": {"description": "ok"},
                    "404": {"description": "no", "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/E"}}}}
                }
            }}},
            "components": {"schemas": {"E": {"type": "object"}}}
        });
        assert_eq!(problems(&document.to_string()), Vec::<String>::new());
    }

    #[test]
    fn each_defect_of_a_document_is_reported() {
        let document = serde_json::json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a/{id}": {
                "get": {"operationId": "x", "responses": {
                    "404": {"description": "no", "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/Missing"}}}},
                    "500": {"description": "bare"}
                }},
                "post": {"operationId": "x", "responses": {"201": {"description": "ok"}}}
            }}
        });
        let found = problems(&document.to_string()).join("\n");
        for expected in [
            "OpenAPI version: Unsupported spec file version (3.0.3)",
            "`$ref` \"#/components/schemas/Missing\" does not resolve",
            "GET /a/{id}: path parameters {} do not match the template {\"id\"}",
            "GET /a/{id}: no success response",
            "GET /a/{id}: the 500 response has no JSON body",
            "operationId `x` is used 2 times",
        ] {
            assert!(
                found.contains(expected),
                "missing {expected:?} in:\n{found}"
            );
        }
    }

    #[test]
    fn text_that_is_not_json_is_a_problem() {
        assert!(!problems("{").is_empty());
    }
}
