//! Apache's `ap_expr` expression language (being written).
