//! Submitted forms, and the endpoint form's text syntax.
//!
//! Forms arrive as name/value pairs (a name may repeat: one per checked
//! event type). The endpoint form writes headers, payload filters and scope
//! as short lines a person can type; `Draft` reads them into the API's
//! message and writes a subscription back the same way, so editing shows
//! exactly what was saved.

use axum::{
    extract::{Form, FromRequest, Request},
    http::StatusCode,
};
use hookline_proto::v1;

use crate::{App, Refusal, pages::Page};

/// Longest form the portal reads (the services limit every field).
pub(crate) const MAX_FORM: usize = 64 * 1024;

/// A submitted form's fields, in order.
#[derive(Debug, Default)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, or "".
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0.iter().filter(move |(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest<App> for Fields {
    type Rejection = Refusal;

    async fn from_request(request: Request, app: &App) -> Result<Self, Refusal> {
        match Form::<Vec<(String, String)>>::from_request(request, app).await {
            Ok(Form(fields)) => Ok(Self(fields)),
            Err(_) => Err(app.refuse(Page::message(
                StatusCode::BAD_REQUEST,
                "That did not work",
                "The form could not be read; reload the page and try again.",
            ))),
        }
    }
}

/// What the endpoint form holds, as typed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Draft {
    pub(crate) name: String,
    pub(crate) url: String,
    /// Types ticked in the catalog's list.
    pub(crate) event_types: Vec<String>,
    /// Other names or patterns, comma-separated ("lead_*").
    pub(crate) other_types: String,
    /// `Name: value` per line.
    pub(crate) headers: String,
    /// `path = value`, `path in a, b`, `path matches glob*` or `path exists`, per line.
    pub(crate) filters: String,
    /// `label = value, value` per line.
    pub(crate) scope: String,
    /// The version the form was made from (0 on create).
    pub(crate) version: i64,
}

impl Draft {
    pub(crate) fn from_form(fields: &Fields) -> Self {
        Self {
            name: fields.get("name").trim().to_owned(),
            url: fields.get("url").trim().to_owned(),
            event_types: fields.all("event_type").map(str::to_owned).collect(),
            other_types: fields.get("other_types").trim().to_owned(),
            headers: fields.get("headers").to_owned(),
            filters: fields.get("filters").to_owned(),
            scope: fields.get("scope").to_owned(),
            version: fields.get("version").parse().unwrap_or(0),
        }
    }

    /// The form for `s`; types in `catalog` become ticks, the rest text.
    pub(crate) fn from_subscription(s: &v1::Subscription, catalog: &[String]) -> Self {
        let (ticked, other): (Vec<String>, Vec<String>) =
            s.event_types.iter().cloned().partition(|t| t == "*" || catalog.contains(t));
        let scope = scope_text(s.scope.iter().map(|(k, v)| (k.as_str(), v.values.clone())));
        let mut headers: Vec<_> = s.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        headers.sort();
        Self {
            name: s.name.clone(),
            url: s.url.clone(),
            event_types: ticked,
            other_types: other.join(", "),
            headers: headers.join("\n"),
            filters: s.filters.iter().map(filter_line).collect::<Vec<_>>().join("\n"),
            scope,
            version: s.version,
        }
    }

    /// The subscription this form describes, or what to fix, said for the
    /// person who typed it.
    pub(crate) fn subscription(&self) -> Result<v1::Subscription, String> {
        let mut event_types: Vec<String> = self.event_types.clone();
        event_types.extend(self.other_types.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned));
        let mut seen = std::collections::HashSet::new();
        event_types.retain(|t| seen.insert(t.clone()));
        if event_types.is_empty() {
            return Err("Choose at least one event type.".into());
        }
        let mut headers = std::collections::HashMap::new();
        for (n, line) in lines(&self.headers) {
            let (name, value) =
                line.split_once(':').ok_or_else(|| format!("Extra headers, line {n}: write it as `Name: value`."))?;
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let mut scope = std::collections::HashMap::new();
        for (n, line) in lines(&self.scope) {
            let (label, values) =
                line.split_once('=').ok_or_else(|| format!("Scope, line {n}: write it as `label = value, value`."))?;
            scope.insert(label.trim().to_owned(), v1::ScopeValues { values: list(values) });
        }
        let filters = lines(&self.filters).map(|(n, line)| parse_filter(n, line)).collect::<Result<_, _>>()?;
        Ok(v1::Subscription {
            name: self.name.clone(),
            url: self.url.clone(),
            event_types,
            headers,
            scope,
            filters,
            version: self.version,
            ..Default::default()
        })
    }
}

/// A scope as the form writes it: `label = value, value` per line, sorted.
pub(crate) fn scope_text<'a>(labels: impl Iterator<Item = (&'a str, Vec<String>)>) -> String {
    let mut lines: Vec<String> = labels.map(|(label, values)| format!("{label} = {}", values.join(", "))).collect();
    lines.sort();
    lines.join("\n")
}

/// Non-empty lines, numbered from 1.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty())
}

fn list(values: &str) -> Vec<String> {
    values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect()
}

fn parse_filter(n: usize, line: &str) -> Result<v1::PayloadFilter, String> {
    use v1::FilterOperator as Op;
    let filter = |path: &str, op: Op, values: Vec<String>| v1::PayloadFilter {
        path: path.trim().to_owned(),
        operator: op as i32,
        values,
    };
    if let Some(path) = line.strip_suffix(" exists") {
        return Ok(filter(path, Op::Exists, Vec::new()));
    }
    if let Some((path, values)) = line.split_once(" in ") {
        return Ok(filter(path, Op::In, list(values)));
    }
    if let Some((path, glob)) = line.split_once(" matches ") {
        return Ok(filter(path, Op::Glob, vec![glob.trim().to_owned()]));
    }
    if let Some((path, value)) = line.split_once('=') {
        return Ok(filter(path, Op::Equals, vec![value.trim().to_owned()]));
    }
    Err(format!("Filters, line {n}: write `path = value`, `path in a, b`, `path matches pattern*` or `path exists`."))
}

fn filter_line(f: &v1::PayloadFilter) -> String {
    use v1::FilterOperator as Op;
    match Op::try_from(f.operator) {
        Ok(Op::Exists) => format!("{} exists", f.path),
        Ok(Op::In) => format!("{} in {}", f.path, f.values.join(", ")),
        Ok(Op::Glob) => format!("{} matches {}", f.path, f.values.join("")),
        _ => format!("{} = {}", f.path, f.values.join("")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_survives_the_form_both_ways() {
        let draft = Draft {
            name: "CRM".into(),
            url: "https://crm.example.com/hook".into(),
            event_types: vec!["order.paid".into()],
            other_types: "lead_*, order.paid".into(),
            headers: "X-Api-Key: abc: d\n\n".into(),
            filters: "data.total = 12\n/data/tags in a, b\ndata.email matches *@example.com\ndata.vip exists".into(),
            scope: "account_id = 12, 13".into(),
            version: 4,
        };
        let s = draft.subscription().expect("valid");
        assert_eq!(s.event_types, ["order.paid", "lead_*"]);
        assert_eq!(s.headers["X-Api-Key"], "abc: d");
        assert_eq!(s.scope["account_id"].values, ["12", "13"]);
        let ops: Vec<_> = s.filters.iter().map(|f| (f.path.as_str(), f.operator, f.values.clone())).collect();
        assert_eq!(
            ops,
            [
                ("data.total", v1::FilterOperator::Equals as i32, vec!["12".to_owned()]),
                ("/data/tags", v1::FilterOperator::In as i32, vec!["a".to_owned(), "b".to_owned()]),
                ("data.email", v1::FilterOperator::Glob as i32, vec!["*@example.com".to_owned()]),
                ("data.vip", v1::FilterOperator::Exists as i32, vec![]),
            ]
        );
        let back = Draft::from_subscription(&s, &["order.paid".into()]);
        assert_eq!(back.event_types, ["order.paid"]);
        assert_eq!(back.other_types, "lead_*");
        assert_eq!(back.subscription().expect("valid").filters, s.filters);
    }

    #[test]
    fn what_cannot_be_read_says_which_line() {
        let bad = |f: fn(&mut Draft)| {
            let mut d = Draft { event_types: vec!["*".into()], ..Draft::default() };
            f(&mut d);
            d.subscription().expect_err("refused")
        };
        assert!(bad(|d| d.headers = "ok: 1\nno colon".into()).contains("line 2"));
        assert!(bad(|d| d.filters = "just words".into()).contains("line 1"));
        assert!(bad(|d| d.scope = "label".into()).contains("Scope"));
        assert!(bad(|d| d.event_types.clear()).contains("event type"));
    }
}
