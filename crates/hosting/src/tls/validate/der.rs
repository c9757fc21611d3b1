//! Small DER helpers: names in webpki's form, SEQUENCE headers, the
//! children of a constructed value, integer sizes.

use x509_parser::asn1_rs::Any;
use x509_parser::prelude::{FromDer, X509Name};

/// The contents of a Name (without its SEQUENCE header), the form in which
/// webpki keeps trust anchor subjects.
pub(super) fn name_contents<'a>(name: &X509Name<'a>) -> &'a [u8] {
    match Any::from_der(name.as_raw()) {
        Ok((_, any)) => any.data,
        Err(_) => name.as_raw(),
    }
}

/// Wraps `contents` in a DER SEQUENCE header.
pub(super) fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

/// Bit length of a big-endian unsigned integer (leading zeros ignored).
pub(super) fn integer_bits(bytes: &[u8]) -> usize {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// The DER elements inside a constructed value, in order.
pub(super) fn der_children(contents: &[u8]) -> Vec<Any<'_>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        match Any::from_der(rest) {
            Ok((next, any)) => {
                out.push(any);
                rest = next;
            }
            Err(_) => break,
        }
    }
    out
}

/// The contents of the single DER value in `der`.
pub(super) fn der_contents(der: &[u8]) -> Option<&[u8]> {
    Any::from_der(der).ok().map(|(_, any)| any.data)
}
