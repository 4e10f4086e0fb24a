//! A sorted set: members ordered by (score, member), with the score of
//! each member at hand.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, HashMap},
    ops::Bound,
};

use crate::db::Bytes;

/// A score with a total order (NaN never gets in: scores are parsed).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct ZSet {
    order: BTreeSet<(Score, Bytes)>,
    scores: HashMap<Bytes, f64>,
}

/// One end of a score range: `5`, `(5` (exclusive), `-inf`, `+inf`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoreBound {
    pub(crate) value: f64,
    pub(crate) exclusive: bool,
}

/// One end of a lexical range: `[a`, `(a`, `-`, `+`.
#[derive(Debug, Clone)]
pub(crate) enum LexBound {
    Min,
    Max,
    Inclusive(Bytes),
    Exclusive(Bytes),
}

impl ZSet {
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets a member's score; true when the member is new.
    pub(crate) fn insert(&mut self, member: Bytes, score: f64) -> bool {
        let fresh = match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(Score(old), member.clone()));
                false
            }
            None => true,
        };
        self.order.insert((Score(score), member));
        fresh
    }

    pub(crate) fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.order.remove(&(Score(score), member.to_vec())),
            None => false,
        }
    }

    /// Members in order (or reversed), as (member, score).
    pub(crate) fn iter(&self, rev: bool) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        let items = self.order.iter().map(|(s, m)| (m, s.0));
        if rev { Box::new(items.rev()) } else { Box::new(items) }
    }

    pub(crate) fn by_score(&self, min: ScoreBound, max: ScoreBound, rev: bool) -> Vec<(Bytes, f64)> {
        let lower = (Score(min.value), Vec::new());
        self.order
            .range((Bound::Included(lower), Bound::Unbounded))
            .take_while(|(s, _)| if max.exclusive { s.0 < max.value } else { s.0 <= max.value })
            .filter(|(s, _)| !(min.exclusive && s.0 <= min.value))
            .map(|(s, m)| (m.clone(), s.0))
            .collect::<Vec<_>>()
            .into_iter()
            .rev_if(rev)
    }

    pub(crate) fn by_lex(&self, min: &LexBound, max: &LexBound, rev: bool) -> Vec<(Bytes, f64)> {
        let above_min = |m: &Bytes| match min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => m >= b,
            LexBound::Exclusive(b) => m > b,
        };
        let below_max = |m: &Bytes| match max {
            LexBound::Max => true,
            LexBound::Min => false,
            LexBound::Inclusive(b) => m <= b,
            LexBound::Exclusive(b) => m < b,
        };
        self.order
            .iter()
            .filter(|(_, m)| above_min(m) && below_max(m))
            .map(|(s, m)| (m.clone(), s.0))
            .collect::<Vec<_>>()
            .into_iter()
            .rev_if(rev)
    }
}

trait RevIf: DoubleEndedIterator + Sized {
    fn rev_if(self, rev: bool) -> Vec<Self::Item> {
        if rev { self.rev().collect() } else { self.collect() }
    }
}

impl<I: DoubleEndedIterator> RevIf for I {}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(value: f64, exclusive: bool) -> ScoreBound {
        ScoreBound { value, exclusive }
    }

    #[test]
    fn members_order_by_score_then_name_and_rescore_in_place() {
        let mut z = ZSet::default();
        assert!(z.insert(b"b".to_vec(), 1.0));
        assert!(z.insert(b"a".to_vec(), 1.0));
        assert!(z.insert(b"c".to_vec(), 0.5));
        assert!(!z.insert(b"c".to_vec(), 2.0));
        let names: Vec<_> = z.iter(false).map(|(m, _)| m.clone()).collect();
        assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(z.len(), 3);
    }

    #[test]
    fn score_ranges_honour_exclusive_ends() {
        let mut z = ZSet::default();
        for (m, s) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
            z.insert(m.as_bytes().to_vec(), s);
        }
        let names = |v: Vec<(Bytes, f64)>| {
            v.into_iter().map(|(m, _)| String::from_utf8(m).unwrap_or_default()).collect::<Vec<_>>()
        };
        assert_eq!(names(z.by_score(bound(1.0, true), bound(3.0, false), false)), ["b", "c"]);
        assert_eq!(names(z.by_score(bound(f64::NEG_INFINITY, false), bound(2.0, true), true)), ["a"]);
        assert_eq!(names(z.by_lex(&LexBound::Exclusive(b"a".to_vec()), &LexBound::Max, false)), ["b", "c"]);
    }
}
