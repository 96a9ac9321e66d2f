//! The error type of the `amf` crate.

/// Everything that can go wrong while decoding AMF0 or AMF3 data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmfError {
    /// The input ended in the middle of a value.
    #[error("truncated AMF data: needed {needed} more bytes")]
    Truncated {
        /// How many more bytes the decoder wanted at the point it stopped.
        needed: usize,
    },
    /// A type marker that is unknown or not supported.
    #[error("unsupported AMF{version} type marker 0x{marker:02x}")]
    UnsupportedMarker {
        /// 0 or 3.
        version: u8,
        /// The offending marker byte.
        marker: u8,
    },
    /// Containers nested deeper than [`crate::MAX_DEPTH`].
    #[error("AMF nesting deeper than {max}")]
    TooDeep {
        /// The limit that was hit.
        max: usize,
    },
    /// A container declared or contained more elements than allowed.
    #[error("AMF container with {count} elements (max {max})")]
    TooManyElements {
        /// The declared or observed element count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// A reference to an entry that does not exist (or cannot be materialised).
    #[error("invalid AMF reference index {index} (table holds {len})")]
    BadReference {
        /// The index read from the wire.
        index: u32,
        /// How many entries the table had.
        len: usize,
    },
    /// Materialising references would exceed [`crate::MAX_REFERENCE_NODES`].
    #[error("AMF reference expansion exceeds {max} nodes")]
    ReferenceBudgetExceeded {
        /// The budget.
        max: usize,
    },
    /// AMF3 externalizable objects need class-specific code we do not have.
    #[error("AMF3 externalizable object of class {class:?} is not supported")]
    Externalizable {
        /// The class name.
        class: String,
    },
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    /// A U29 or length field out of range.
    #[error("AMF length {len} out of range")]
    BadLength {
        /// The offending length.
        len: u64,
    },
}
