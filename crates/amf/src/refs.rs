//! Bounded reference tables shared by the AMF0 and AMF3 decoders.

use crate::{AmfError, MAX_REFERENCE_NODES, MAX_REFERENCES, Value};

/// A table of complex values that later references may point at.
///
/// Entries are reserved when a value starts (so indices follow the order in
/// which values begin, as the specs require) and filled when it ends. An entry
/// whose value is still being decoded (a cycle) or was too large to keep
/// stays `None`, and a reference to it is rejected.
#[derive(Debug, Default)]
pub(crate) struct RefTable {
    entries: Vec<Option<Value>>,
    /// Nodes held in `entries` plus nodes materialised through references.
    nodes: usize,
}

impl RefTable {
    /// Reserves the next index.
    pub(crate) fn reserve(&mut self) -> Result<usize, AmfError> {
        if self.entries.len() >= MAX_REFERENCES {
            return Err(AmfError::TooManyElements {
                count: self.entries.len() as u64 + 1,
                max: MAX_REFERENCES,
            });
        }
        self.entries.push(None);
        Ok(self.entries.len() - 1)
    }

    /// Stores the finished value at `index`, unless that would exceed the budget.
    pub(crate) fn fill(&mut self, index: usize, value: &Value) {
        let n = value.node_count();
        if self.nodes + n <= MAX_REFERENCE_NODES
            && let Some(slot) = self.entries.get_mut(index)
        {
            self.nodes += n;
            *slot = Some(value.clone());
        }
    }

    /// A copy of the value at `index`, charged against the budget.
    pub(crate) fn get(&mut self, index: u32) -> Result<Value, AmfError> {
        let len = self.entries.len();
        let v = self
            .entries
            .get(index as usize)
            .and_then(Option::as_ref)
            .ok_or(AmfError::BadReference { index, len })?;
        let n = v.node_count();
        if self.nodes + n > MAX_REFERENCE_NODES {
            return Err(AmfError::ReferenceBudgetExceeded {
                max: MAX_REFERENCE_NODES,
            });
        }
        self.nodes += n;
        Ok(v.clone())
    }
}
