//! Conditions beyond the event type: scope labels on the event's attributes
//! and filters on its JSON payload.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ValidationError;

/// Label -> allowed values. An event is in scope when, for every label, its
/// attribute of that name holds one of the values (Reply.io's
/// `subscriptionLevel: team` + `teamIds: [1, 2]` is `team_id -> {1, 2}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope(BTreeMap<String, BTreeSet<String>>);

impl Scope {
    pub const MAX_LABELS: usize = 16;
    pub const MAX_VALUES: usize = 1000;
    pub const MAX_LEN: usize = 256;

    pub fn new(labels: BTreeMap<String, BTreeSet<String>>) -> Result<Self, ValidationError> {
        if labels.len() > Self::MAX_LABELS {
            return Err(ValidationError::new("scope", format!("has more than {} labels", Self::MAX_LABELS)));
        }
        for (label, values) in &labels {
            let label_ok = !label.is_empty()
                && label.len() <= 64
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !label_ok {
                return Err(ValidationError::new(
                    "scope",
                    format!("label `{label}` must be 1 to 64 letters, digits, `_`, `-` or `.`"),
                ));
            }
            if values.is_empty() {
                return Err(ValidationError::new(
                    format!("scope.{label}"),
                    "lists no values; give at least one, or leave the label out to accept any",
                ));
            }
            if values.len() > Self::MAX_VALUES {
                return Err(ValidationError::new(
                    format!("scope.{label}"),
                    format!("has more than {} values", Self::MAX_VALUES),
                ));
            }
            if let Some(long) = values.iter().find(|v| v.is_empty() || v.len() > Self::MAX_LEN) {
                return Err(ValidationError::new(
                    format!("scope.{label}"),
                    format!("value `{long}` must be 1 to {} bytes", Self::MAX_LEN),
                ));
            }
        }
        Ok(Self(labels))
    }

    pub fn labels(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every event this scope lets through is also in `outer`: for
    /// each label of `outer`, this scope names it and allows only values
    /// `outer` allows (a scope without the label would let any value in).
    pub fn within(&self, outer: &Scope) -> bool {
        outer.0.iter().all(|(label, allowed)| self.0.get(label).is_some_and(|values| values.is_subset(allowed)))
    }

    /// This scope narrowed into `outer`: labels `outer` has and this one
    /// lacks are added with `outer`'s values. Refused (naming the label)
    /// when this scope allows a value `outer` does not.
    pub fn narrowed_to(&self, outer: &Scope) -> Result<Scope, ValidationError> {
        let mut labels = self.0.clone();
        for (label, allowed) in &outer.0 {
            match labels.get(label) {
                None => {
                    labels.insert(label.clone(), allowed.clone());
                }
                Some(values) if !values.is_subset(allowed) => {
                    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
                    return Err(ValidationError::new(
                        format!("scope.{label}"),
                        format!("may only hold {} here", allowed.join(", ")),
                    ));
                }
                Some(_) => {}
            }
        }
        Scope::new(labels)
    }

    pub fn matches(&self, attributes: &HashMap<String, String>) -> bool {
        self.0.iter().all(|(label, allowed)| attributes.get(label).is_some_and(|v| allowed.contains(v)))
    }
}

/// A condition on the event payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadFilter {
    /// The path as given (dotted or JSON Pointer), echoed back to clients.
    path: String,
    /// The same path as a JSON Pointer, for `serde_json::Value::pointer`.
    pointer: String,
    op: FilterOp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", content = "values", rename_all = "snake_case")]
pub enum FilterOp {
    Equals(String),
    Glob(TextGlob),
    In(BTreeSet<String>),
    Exists,
}

impl PartialEq for FilterOp {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Equals(a), Self::Equals(b)) => a == b,
            (Self::Glob(a), Self::Glob(b)) => a.as_str() == b.as_str(),
            (Self::In(a), Self::In(b)) => a == b,
            (Self::Exists, Self::Exists) => true,
            _ => false,
        }
    }
}

impl Eq for FilterOp {}

impl FilterOp {
    pub fn glob(pattern: &str) -> Result<Self, ValidationError> {
        if pattern.len() > PayloadFilter::MAX_OPERAND {
            return Err(ValidationError::new(
                "values",
                format!("a glob of {} bytes is over the limit of {} bytes", pattern.len(), PayloadFilter::MAX_OPERAND),
            ));
        }
        TextGlob::compile(pattern)
            .map(Self::Glob)
            .map_err(|e| ValidationError::new("values", format!("`{pattern}` is not a valid glob: {}", e.kind())))
    }

    /// The operand(s) as the API shows them.
    pub fn values(&self) -> Vec<String> {
        match self {
            Self::Equals(v) => vec![v.clone()],
            Self::Glob(m) => vec![m.as_str().to_owned()],
            Self::In(vs) => vs.iter().cloned().collect(),
            Self::Exists => Vec::new(),
        }
    }

    fn holds_for_text(&self, text: &str) -> bool {
        match self {
            Self::Equals(v) => v == text,
            Self::Glob(m) => m.is_match(text),
            Self::In(vs) => vs.contains(text),
            Self::Exists => true,
        }
    }
}

/// A compiled glob that serialises as its source text.
#[derive(Debug, Clone)]
pub struct TextGlob(GlobMatcher);

impl TextGlob {
    fn compile(pattern: &str) -> Result<Self, globset::Error> {
        GlobBuilder::new(pattern).literal_separator(false).build().map(|g| Self(g.compile_matcher()))
    }

    pub fn as_str(&self) -> &str {
        self.0.glob().glob()
    }

    fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl Serialize for TextGlob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TextGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::compile(&text).map_err(serde::de::Error::custom)
    }
}

impl PayloadFilter {
    pub const MAX_FILTERS: usize = 16;
    /// Bytes of one operand (an `EQUALS` value, a glob, one `IN` value).
    pub const MAX_OPERAND: usize = 1024;
    /// Values of one `IN` filter.
    pub const MAX_IN_VALUES: usize = 1000;

    /// `path` is a JSON Pointer (`/data/campaign_name`) or a dotted path
    /// (`data.campaign_name`; array elements as `items.0.sku`).
    pub fn new(path: &str, op: FilterOp) -> Result<Self, ValidationError> {
        if path.is_empty() || path.len() > 256 {
            return Err(ValidationError::new("path", "must be 1 to 256 characters"));
        }
        let values = op.values();
        if values.len() > Self::MAX_IN_VALUES {
            return Err(ValidationError::new("values", format!("has more than {} values", Self::MAX_IN_VALUES)));
        }
        if let Some(long) = values.iter().find(|v| v.len() > Self::MAX_OPERAND) {
            return Err(ValidationError::new(
                "values",
                format!("a value of {} bytes is over the limit of {} bytes", long.len(), Self::MAX_OPERAND),
            ));
        }
        let pointer = if path.starts_with('/') {
            path.to_owned()
        } else {
            if path.split('.').any(str::is_empty) {
                return Err(ValidationError::new("path", format!("`{path}` has an empty segment")));
            }
            path.split('.').map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1"))).collect()
        };
        Ok(Self { path: path.to_owned(), pointer, op })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn op(&self) -> &FilterOp {
        &self.op
    }

    /// Whether the payload satisfies this filter. Scalars are compared by
    /// their JSON text (`"a"` as `a`, `12`, `true`, `null`); an array holds
    /// when any of its scalar elements does; objects never equal a value.
    pub fn matches(&self, payload: &Value) -> bool {
        let Some(found) = payload.pointer(&self.pointer) else {
            return false;
        };
        if let FilterOp::Exists = self.op {
            return true;
        }
        match found {
            Value::Array(items) => items.iter().any(|item| self.scalar_holds(item)),
            other => self.scalar_holds(other),
        }
    }

    fn scalar_holds(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => self.op.holds_for_text(s),
            Value::Number(n) => self.op.holds_for_text(&n.to_string()),
            Value::Bool(b) => self.op.holds_for_text(if *b { "true" } else { "false" }),
            Value::Null => self.op.holds_for_text("null"),
            Value::Array(_) | Value::Object(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scope(pairs: &[(&str, &[&str])]) -> Scope {
        Scope::new(
            pairs.iter().map(|(l, vs)| ((*l).to_owned(), vs.iter().map(|v| (*v).to_owned()).collect())).collect(),
        )
        .expect("valid scope")
    }

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn empty_scope_matches_any_event() {
        assert!(Scope::default().matches(&attrs(&[])));
    }

    #[test]
    fn scope_needs_every_label_with_an_allowed_value() {
        let s = scope(&[("team_id", &["1", "2"]), ("account_id", &["9"])]);
        assert!(s.matches(&attrs(&[("team_id", "2"), ("account_id", "9"), ("other", "x")])));
        assert!(!s.matches(&attrs(&[("team_id", "3"), ("account_id", "9")])));
        assert!(!s.matches(&attrs(&[("team_id", "1")])), "a missing label does not match");
    }

    #[test]
    fn a_scope_is_within_another_only_if_it_lets_no_other_value_through() {
        let outer = scope(&[("account_id", &["12", "13"])]);
        assert!(scope(&[("account_id", &["12"]), ("team", &["a"])]).within(&outer));
        assert!(!scope(&[("account_id", &["12", "14"])]).within(&outer));
        assert!(!Scope::default().within(&outer), "no label: every account");
        assert!(Scope::default().within(&Scope::default()));
        let filled = Scope::default().narrowed_to(&outer).expect("filled in");
        assert_eq!(filled, outer);
        let kept = scope(&[("account_id", &["13"])]).narrowed_to(&outer).expect("already within");
        assert_eq!(kept, scope(&[("account_id", &["13"])]));
        let refused = scope(&[("account_id", &["99"])]).narrowed_to(&outer).expect_err("outside");
        assert!(
            refused.to_string().contains("scope.account_id") && refused.to_string().contains("12, 13"),
            "{refused}"
        );
    }

    #[test]
    fn scope_rejects_empty_value_lists_and_bad_labels() {
        assert!(Scope::new([("team".to_owned(), BTreeSet::new())].into()).is_err());
        assert!(Scope::new([("bad label".to_owned(), ["1".to_owned()].into())].into()).is_err());
    }

    #[test]
    fn glob_filter_on_a_top_level_field() {
        let f = PayloadFilter::new("campaign_name", FilterOp::glob("summer-promo-*").expect("glob")).expect("filter");
        assert!(f.matches(&json!({"campaign_name": "summer-promo-2026"})));
        assert!(!f.matches(&json!({"campaign_name": "winter-sale"})));
        assert!(!f.matches(&json!({"other": "summer-promo-1"})));
    }

    #[test]
    fn dotted_and_pointer_paths_reach_nested_fields() {
        let payload = json!({"data": {"business": {"id": 1001}, "tags": ["vip", "new"]}});
        let dotted = PayloadFilter::new("data.business.id", FilterOp::Equals("1001".into())).expect("filter");
        let pointer =
            PayloadFilter::new("/data/business/id", FilterOp::In(["7".into(), "1001".into()].into())).expect("filter");
        assert!(dotted.matches(&payload) && pointer.matches(&payload));
        let tags = PayloadFilter::new("data.tags", FilterOp::Equals("vip".into())).expect("filter");
        assert!(tags.matches(&payload), "an array holds when an element does");
    }

    #[test]
    fn exists_holds_for_null_but_not_for_missing() {
        let f = PayloadFilter::new("a.b", FilterOp::Exists).expect("filter");
        assert!(f.matches(&json!({"a": {"b": null}})));
        assert!(!f.matches(&json!({"a": {}})));
    }

    #[test]
    fn booleans_compare_by_their_json_text() {
        let f = PayloadFilter::new("fromCustomer", FilterOp::Equals("true".into())).expect("filter");
        assert!(f.matches(&json!({"fromCustomer": true})));
        assert!(!f.matches(&json!({"fromCustomer": "yes"})));
    }

    #[test]
    fn bad_paths_and_globs_are_refused() {
        assert!(PayloadFilter::new("", FilterOp::Exists).is_err());
        assert!(PayloadFilter::new("a..b", FilterOp::Exists).is_err());
        assert!(FilterOp::glob("summer-[").is_err());
    }

    #[test]
    fn filters_survive_a_storage_round_trip() {
        let f = PayloadFilter::new("x", FilterOp::glob("a*").expect("glob")).expect("filter");
        let back: PayloadFilter = serde_json::from_str(&serde_json::to_string(&f).expect("ser")).expect("de");
        assert_eq!(back, f);
        assert!(back.matches(&json!({"x": "abc"})));
    }
}
