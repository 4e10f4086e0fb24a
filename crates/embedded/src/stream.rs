//! A stream with consumer groups: entries by id, and per group the last
//! delivered id and the pending entries list (who holds what since when).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    ops::Bound,
};

use crate::db::{Bytes, CommandError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    pub(crate) const MIN: Self = Self { ms: 0, seq: 0 };
    pub(crate) const MAX: Self = Self { ms: u64::MAX, seq: u64::MAX };

    /// `ms-seq`, or `ms` alone (its sequence then defaults to `missing_seq`).
    pub(crate) fn parse(text: &[u8], missing_seq: u64) -> Result<Self, CommandError> {
        let invalid = || CommandError::new("ERR Invalid stream ID specified as stream command argument");
        let text = std::str::from_utf8(text).map_err(|_| invalid())?;
        let (ms, seq) = match text.split_once('-') {
            Some((ms, seq)) => (ms.parse().map_err(|_| invalid())?, seq.parse().map_err(|_| invalid())?),
            None => (text.parse().map_err(|_| invalid())?, missing_seq),
        };
        Ok(Self { ms, seq })
    }

    /// The first id after this one.
    pub(crate) fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 }),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

pub(crate) type Fields = Vec<(Bytes, Bytes)>;

#[derive(Debug, Clone)]
pub(crate) struct PendingEntry {
    pub(crate) consumer: Bytes,
    pub(crate) delivered_ms: u64,
    pub(crate) deliveries: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Group {
    pub(crate) last_delivered: StreamId,
    /// Entries delivered to the group so far (XINFO's `entries-read`),
    /// kept as a counter as Redis does: a recount would walk every entry
    /// read and still kept, and fan-out asks XINFO GROUPS every batch.
    pub(crate) entries_read: u64,
    pub(crate) pending: BTreeMap<StreamId, PendingEntry>,
    /// Consumer name -> when it was last seen (ms).
    pub(crate) consumers: BTreeMap<Bytes, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) entries: BTreeMap<StreamId, Fields>,
    pub(crate) last_id: StreamId,
    pub(crate) groups: HashMap<Bytes, Group>,
}

impl Stream {
    /// Adds an entry: `id` None means "next id at `now_ms`" (`*`).
    pub(crate) fn add(&mut self, id: Option<StreamId>, fields: Fields, now_ms: u64) -> Result<StreamId, CommandError> {
        let id = match id {
            Some(id) if id > self.last_id => id,
            Some(_) => {
                return Err(CommandError::new(
                    "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                ));
            }
            None if now_ms > self.last_id.ms => StreamId { ms: now_ms, seq: 0 },
            None => self.last_id.next().ok_or_else(|| {
                CommandError::new("ERR The stream has exhausted the last possible ID, unable to add more items")
            })?,
        };
        self.entries.insert(id, fields);
        self.last_id = id;
        Ok(id)
    }

    pub(crate) fn range(
        &self,
        start: Bound<StreamId>,
        end: Bound<StreamId>,
    ) -> impl DoubleEndedIterator<Item = (&StreamId, &Fields)> {
        let empty = match (start, end) {
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s > e,
            _ => false,
        };
        let (start, end) =
            if empty { (Bound::Excluded(StreamId::MAX), Bound::Included(StreamId::MAX)) } else { (start, end) };
        self.entries.range((start, end))
    }

    /// Deletes entries below `min`; returns how many.
    pub(crate) fn trim_min_id(&mut self, min: StreamId) -> usize {
        let keep = self.entries.split_off(&min);
        let removed = self.entries.len();
        self.entries = keep;
        removed
    }

    /// Keeps the newest `max_len` entries; returns how many were deleted.
    pub(crate) fn trim_max_len(&mut self, max_len: usize) -> usize {
        let excess = self.entries.len().saturating_sub(max_len);
        for _ in 0..excess {
            self.entries.pop_first();
        }
        excess
    }

    /// Entries after the group's last delivered id: how far it lags (a
    /// walk of the unread entries only).
    pub(crate) fn lag(&self, group: &Group) -> usize {
        self.entries.range((Bound::Excluded(group.last_delivered), Bound::Unbounded)).count()
    }

    /// A group that has read everything up to `last_delivered`.
    pub(crate) fn group_at(&self, last_delivered: StreamId) -> Group {
        let entries_read = self.entries.range(..=last_delivered).count() as u64;
        Group { last_delivered, entries_read, ..Group::default() }
    }

    /// New entries for `consumer` of `group` (`>`): moved into its
    /// pending list unless `no_ack`.
    pub(crate) fn read_new(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        count: usize,
        no_ack: bool,
        now_ms: u64,
    ) -> Option<Vec<(StreamId, Fields)>> {
        let Self { entries, groups, .. } = self;
        let group = groups.get_mut(group)?;
        group.consumers.insert(consumer.to_vec(), now_ms);
        let taken: Vec<(StreamId, Fields)> = entries
            .range((Bound::Excluded(group.last_delivered), Bound::Unbounded))
            .take(count)
            .map(|(id, f)| (*id, f.clone()))
            .collect();
        if let Some((last, _)) = taken.last() {
            group.last_delivered = *last;
        }
        group.entries_read += taken.len() as u64;
        if !no_ack {
            for (id, _) in &taken {
                group
                    .pending
                    .insert(*id, PendingEntry { consumer: consumer.to_vec(), delivered_ms: now_ms, deliveries: 1 });
            }
        }
        Some(taken)
    }

    /// The consumer's own pending entries after `after` (a history read).
    /// Entries deleted since are returned with no fields, as Redis does.
    pub(crate) fn read_pending(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        after: StreamId,
        count: usize,
        now_ms: u64,
    ) -> Option<Vec<(StreamId, Option<Fields>)>> {
        let Self { entries, groups, .. } = self;
        let group = groups.get_mut(group)?;
        group.consumers.insert(consumer.to_vec(), now_ms);
        Some(
            group
                .pending
                .range((Bound::Excluded(after), Bound::Unbounded))
                .filter(|(_, p)| p.consumer == consumer)
                .take(count)
                .map(|(id, _)| (*id, entries.get(id).cloned()))
                .collect(),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_even_when_the_clock_does_not() {
        let mut s = Stream::default();
        let a = s.add(None, vec![], 100).unwrap();
        let b = s.add(None, vec![], 100).unwrap();
        let c = s.add(None, vec![], 99).unwrap();
        assert_eq!((a.to_string(), b.to_string(), c.to_string()), ("100-0".into(), "100-1".into(), "100-2".into()));
        assert!(s.add(Some(StreamId { ms: 100, seq: 2 }), vec![], 0).is_err());
    }

    #[test]
    fn trimming_by_min_id_keeps_the_rest() {
        let mut s = Stream::default();
        for ms in 1..=5 {
            s.add(Some(StreamId { ms, seq: 0 }), vec![], 0).unwrap();
        }
        assert_eq!(s.trim_min_id(StreamId { ms: 3, seq: 0 }), 2);
        assert_eq!(s.entries.len(), 3);
        assert_eq!(s.trim_max_len(1), 2);
        assert_eq!(s.entries.keys().next(), Some(&StreamId { ms: 5, seq: 0 }));
    }
}
