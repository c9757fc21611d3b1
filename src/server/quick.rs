//! Quick mode (being written).
