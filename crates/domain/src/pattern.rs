//! Event-type patterns: what a subscription's `event_types` entries mean.
//!
//! `*` matches every type, a name without glob characters matches itself,
//! and anything else is a glob (`lead_*`, `email_{opened,clicked}`,
//! `message.?`) compiled once with `globset`, where `*` crosses `.` and `/`
//! alike (event types are names, not paths).

use std::fmt;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::{ValidationError, catalog::EventTypeName};

const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}'];

/// One entry of a subscription's `event_types`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EventTypePattern {
    /// `*`: every event type.
    Any,
    /// An exact event-type name.
    Exact(EventTypeName),
    /// A glob over event-type names.
    Glob { source: String, matcher: GlobMatcher },
}

impl EventTypePattern {
    pub const MAX_LEN: usize = 128;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        if text == "*" {
            return Ok(Self::Any);
        }
        if !text.contains(GLOB_CHARS) {
            return EventTypeName::parse(text).map(Self::Exact);
        }
        if text.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "event_types",
                format!("`{text}` is longer than {} characters", Self::MAX_LEN),
            ));
        }
        let literal_ok =
            text.chars().all(|c| EventTypeName::is_name_char(c) || GLOB_CHARS.contains(&c) || c == ',' || c == '!');
        if !literal_ok {
            return Err(ValidationError::new(
                "event_types",
                format!("`{text}` may only hold letters, digits, `_ . - : /` and the glob characters `* ? [ ] {{ }}`"),
            ));
        }
        let glob: Glob = GlobBuilder::new(text)
            .literal_separator(false)
            .build()
            .map_err(|e| ValidationError::new("event_types", format!("`{text}` is not a valid glob: {}", e.kind())))?;
        Ok(Self::Glob { source: text.to_owned(), matcher: glob.compile_matcher() })
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(name) => name.as_str() == event_type,
            Self::Glob { matcher, .. } => matcher.is_match(event_type),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Any => "*",
            Self::Exact(name) => name.as_str(),
            Self::Glob { source, .. } => source,
        }
    }

    /// The literal text before the first glob character (`lead_` for `lead_*`).
    fn literal_prefix(&self) -> &str {
        let text = self.as_str();
        text.find(GLOB_CHARS).map_or(text, |at| &text[..at])
    }
}

/// Whether some event type could match both patterns.
///
/// Exact: when either side is `*` or exact. For two globs it is
/// conservative: they are taken to overlap when one literal prefix starts the
/// other (`lead_*` and `lead_meeting_*` do; `lead_*` and `email_*` do not),
/// so a conflict may be reported that a cleverer check would not; callers can
/// pass `allow_duplicate_endpoint`.
pub fn patterns_overlap(a: &EventTypePattern, b: &EventTypePattern) -> bool {
    use EventTypePattern::{Any, Exact, Glob};
    match (a, b) {
        (Any, _) | (_, Any) => true,
        (Exact(x), other) | (other, Exact(x)) => other.matches(x.as_str()),
        (Glob { .. }, Glob { .. }) => {
            let (pa, pb) = (a.literal_prefix(), b.literal_prefix());
            pa.starts_with(pb) || pb.starts_with(pa)
        }
    }
}

impl PartialEq for EventTypePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for EventTypePattern {}

impl fmt::Debug for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for EventTypePattern {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EventTypePattern> for String {
    fn from(p: EventTypePattern) -> String {
        p.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> EventTypePattern {
        EventTypePattern::parse(text).expect(text)
    }

    #[test]
    fn star_matches_every_event_type() {
        assert!(p("*").matches("lead_interested"));
        assert!(p("*").matches("a.b/c"));
    }

    #[test]
    fn exact_name_matches_only_itself() {
        assert!(p("email_sent").matches("email_sent"));
        assert!(!p("email_sent").matches("email_sent_2"));
        assert!(!p("email_sent").matches("Email_sent"));
    }

    #[test]
    fn prefix_glob_matches_names_with_that_prefix_across_dots() {
        let lead = p("lead_*");
        assert!(lead.matches("lead_interested"));
        assert!(lead.matches("lead_"));
        assert!(!lead.matches("email_opened"));
        assert!(p("message.*").matches("message.created.v2"));
    }

    #[test]
    fn alternation_and_single_character_globs_work() {
        let g = p("email_{opened,link_clicked}");
        assert!(g.matches("email_opened") && g.matches("email_link_clicked"));
        assert!(!g.matches("email_sent"));
        assert!(p("v?.created").matches("v2.created"));
    }

    #[test]
    fn malformed_globs_and_odd_characters_are_refused() {
        for bad in ["lead_[", "lead_{a,b", "", "has space*", "é*"] {
            assert!(EventTypePattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn overlap_of_exact_names_and_globs() {
        assert!(patterns_overlap(&p("a"), &p("a")));
        assert!(!patterns_overlap(&p("a"), &p("b")));
        assert!(patterns_overlap(&p("*"), &p("b")));
        assert!(patterns_overlap(&p("lead_*"), &p("lead_closed")));
        assert!(!patterns_overlap(&p("lead_*"), &p("email_sent")));
        assert!(patterns_overlap(&p("lead_*"), &p("lead_meeting_*")));
        assert!(!patterns_overlap(&p("lead_*"), &p("email_*")));
    }
}
