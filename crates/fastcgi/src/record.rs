//! FastCGI 1.0 records: an 8-byte header (version 1, type, request id u16
//! BE, content length u16 BE, padding length, reserved), the content, then
//! padding. Encoding pads to a multiple of 8 as nginx does; decoding is
//! sans-I/O (bytes in a buffer → whole records) so any split of the input
//! gives the same records.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub(crate) const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 8;
/// Every request uses id 1: one request per connection at a time, as
/// nginx, Apache and PHP-FPM do (PHP-FPM does not multiplex).
pub(crate) const REQUEST_ID: u16 = 1;
/// Most content we put in one record. PHP-FPM drops a connection whose
/// PARAMS record has content + padding above 65535 (main/fastcgi.c), so
/// with padding to 8 the most is 65528; used for every record type.
pub(crate) const MAX_CONTENT: usize = 65528;

pub(crate) const BEGIN_REQUEST: u8 = 1;
pub(crate) const END_REQUEST: u8 = 3;
pub(crate) const PARAMS: u8 = 4;
pub(crate) const STDIN: u8 = 5;
pub(crate) const STDOUT: u8 = 6;
pub(crate) const STDERR: u8 = 7;

pub(crate) const ROLE_RESPONDER: u16 = 1;
pub(crate) const FLAG_KEEP_CONN: u8 = 1;

/// END_REQUEST protocolStatus values.
pub(crate) const REQUEST_COMPLETE: u8 = 0;
pub(crate) const CANT_MPX_CONN: u8 = 1;
pub(crate) const OVERLOADED: u8 = 2;
pub(crate) const UNKNOWN_ROLE: u8 = 3;

/// One decoded record (padding dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub kind: u8,
    pub request_id: u16,
    pub content: Bytes,
}

/// Padding that brings `len` to a multiple of 8.
pub(crate) fn padding_for(len: usize) -> usize {
    (8 - len % 8) % 8
}

/// One record; `content` must fit (`MAX_CONTENT`), which every caller here
/// guarantees by chunking. Longer content is cut rather than corrupting the
/// 16-bit length.
pub(crate) fn put_record(out: &mut BytesMut, kind: u8, request_id: u16, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let content = &content[..content.len().min(MAX_CONTENT)];
    let pad = padding_for(content.len());
    out.reserve(HEADER_LEN + content.len() + pad);
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u16(request_id);
    out.put_u16(content.len() as u16);
    out.put_u8(pad as u8);
    out.put_u8(0);
    out.put_slice(content);
    out.put_bytes(0, pad);
}

/// BEGIN_REQUEST for the responder role.
pub(crate) fn put_begin_request(out: &mut BytesMut, request_id: u16, keep_conn: bool) {
    let mut body = [0u8; 8];
    body[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
    body[2] = if keep_conn { FLAG_KEEP_CONN } else { 0 };
    put_record(out, BEGIN_REQUEST, request_id, &body);
}

/// `data` as records of a stream type (no terminating empty record).
#[cfg(test)]
pub(crate) fn put_stream(out: &mut BytesMut, kind: u8, request_id: u16, data: &[u8]) {
    for chunk in data.chunks(MAX_CONTENT) {
        put_record(out, kind, request_id, chunk);
    }
}

/// PARAMS records for `params` then the empty PARAMS record. PHP-FPM
/// parses each PARAMS record on its own, so a pair never straddles two
/// records; a pair too large for one record is skipped (as Apache's
/// mod_proxy_fcgi does, AH02536) and its name returned for a warning.
pub(crate) fn put_params(
    out: &mut BytesMut,
    request_id: u16,
    params: &[(String, String)],
) -> Vec<String> {
    let mut skipped = Vec::new();
    let mut chunk: Vec<u8> = Vec::new();
    for (name, value) in params {
        let (name, value) = (name.as_bytes(), value.as_bytes());
        let pair_len =
            length_size(name.len()) + length_size(value.len()) + name.len() + value.len();
        if pair_len > MAX_CONTENT {
            skipped.push(String::from_utf8_lossy(name).into_owned());
            continue;
        }
        if chunk.len() + pair_len > MAX_CONTENT {
            put_record(out, PARAMS, request_id, &chunk);
            chunk.clear();
        }
        put_length(&mut chunk, name.len());
        put_length(&mut chunk, value.len());
        chunk.extend_from_slice(name);
        chunk.extend_from_slice(value);
    }
    if !chunk.is_empty() {
        put_record(out, PARAMS, request_id, &chunk);
    }
    put_record(out, PARAMS, request_id, &[]);
    skipped
}

fn length_size(len: usize) -> usize {
    if len < 128 {
        1
    } else {
        4
    }
}

/// A name-value length: one byte below 128, else four with the high bit
/// set. Callers keep `len` ≤ MAX_CONTENT, far below 2^31.
fn put_length(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
    }
}

/// Take the next whole record off the front of `buf`; `Ok(None)` when more
/// bytes are needed (and room for them is reserved). Errors on a version
/// other than 1: the stream cannot be trusted past it.
pub(crate) fn decode(buf: &mut BytesMut) -> Result<Option<Record>, String> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != VERSION {
        return Err(format!(
            "record with FastCGI version {} (expected 1)",
            buf[0]
        ));
    }
    let kind = buf[1];
    let request_id = u16::from_be_bytes([buf[2], buf[3]]);
    let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
    let pad = usize::from(buf[6]);
    let total = HEADER_LEN + len + pad;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(len).freeze();
    buf.advance(pad);
    Ok(Some(Record {
        kind,
        request_id,
        content,
    }))
}

/// The END_REQUEST body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndRequest {
    pub app_status: u32,
    pub protocol_status: u8,
}

pub(crate) fn parse_end_request(content: &[u8]) -> Result<EndRequest, String> {
    match content {
        [a, b, c, d, status, ..] => Ok(EndRequest {
            app_status: u32::from_be_bytes([*a, *b, *c, *d]),
            protocol_status: *status,
        }),
        _ => Err(format!(
            "END_REQUEST of {} bytes (expected 8)",
            content.len()
        )),
    }
}

/// Name-value pairs of a PARAMS stream (the fake servers in tests read
/// what the client sends with it).
#[cfg(test)]
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

#[cfg(test)]
pub(crate) fn parse_params(mut content: &[u8]) -> Result<Pairs, String> {
    fn length(content: &mut &[u8]) -> Result<usize, String> {
        match *content {
            [b, ..] if b & 0x80 == 0 => {
                *content = &content[1..];
                Ok(usize::from(*b))
            }
            [a, b, c, d, ..] => {
                let len = u32::from_be_bytes([*a & 0x7f, *b, *c, *d]) as usize;
                *content = &content[4..];
                Ok(len)
            }
            _ => Err("truncated name-value length".into()),
        }
    }
    let mut pairs = Vec::new();
    while !content.is_empty() {
        let name_len = length(&mut content)?;
        let value_len = length(&mut content)?;
        if content.len() < name_len + value_len {
            return Err("truncated name-value pair".into());
        }
        let (name, rest) = content.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        pairs.push((name.to_vec(), value.to_vec()));
        content = rest;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut buf: BytesMut) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(r) = decode(&mut buf).expect("valid records") {
            out.push(r);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn pads_records_to_multiples_of_eight() {
        for len in [0usize, 1, 7, 8, 9, 15, 16, 1000, MAX_CONTENT] {
            let mut out = BytesMut::new();
            put_record(&mut out, STDIN, REQUEST_ID, &vec![b'x'; len]);
            assert_eq!(out.len() % 8, 0, "len {len}");
            assert_eq!(out.len(), HEADER_LEN + len + padding_for(len));
            assert_eq!(&out[..4], &[1, STDIN, 0, 1]);
            assert_eq!(usize::from(u16::from_be_bytes([out[4], out[5]])), len);
            assert_eq!(usize::from(out[6]), padding_for(len));
            assert!(len + padding_for(len) <= 65535);
        }
    }

    #[test]
    fn begin_request_asks_for_responder_and_keep_conn() {
        let mut out = BytesMut::new();
        put_begin_request(&mut out, 1, true);
        assert_eq!(&out[..], &[1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        let mut out = BytesMut::new();
        put_begin_request(&mut out, 1, false);
        assert_eq!(out[10], 0);
    }

    #[test]
    fn name_value_lengths_127_128_and_long() {
        let long = "v".repeat(70_000);
        let params = vec![
            ("A".repeat(127), "b".repeat(127)),
            ("N".repeat(128), "w".repeat(128)),
            ("SHORT".to_string(), String::new()),
            ("BIG".to_string(), "x".repeat(65_000)),
            ("HUGE".to_string(), long),
            ("AFTER".to_string(), "1".to_string()),
        ];
        let mut out = BytesMut::new();
        let skipped = put_params(&mut out, 1, &params);
        assert_eq!(skipped, vec!["HUGE".to_string()]);
        let records = decode_all(out);
        // The 127, 128 and SHORT pairs share a record; BIG does not fit
        // after them and starts the next (with AFTER); then the empty
        // terminator.
        assert_eq!(records.len(), 3);
        assert!(records
            .iter()
            .all(|r| r.kind == PARAMS && r.request_id == 1));
        assert!(records.last().is_some_and(|r| r.content.is_empty()));
        let first = &records[0].content;
        assert_eq!(&first[..2], &[127, 127]);
        assert_eq!(
            &first[2 + 254..2 + 254 + 8],
            &[0x80, 0, 0, 128, 0x80, 0, 0, 128]
        );
        let mut pairs = Vec::new();
        for r in &records {
            assert!(r.content.len() <= MAX_CONTENT);
            pairs.extend(parse_params(&r.content).expect("whole pairs per record"));
        }
        let names: Vec<_> = pairs.iter().map(|(n, _)| n.len()).collect();
        assert_eq!(names, vec![127, 128, 5, 3, 5]);
        assert_eq!(pairs[3].1.len(), 65_000);
        assert_eq!(pairs[4].1, b"1");
    }

    #[test]
    fn decodes_at_every_split_point() {
        let mut wire = BytesMut::new();
        put_stream(&mut wire, STDOUT, 1, b"Status: 200\r\n\r\nhello");
        put_record(&mut wire, STDERR, 1, b"warn");
        put_record(&mut wire, STDOUT, 1, b"");
        put_record(&mut wire, END_REQUEST, 1, &[0, 0, 0, 7, 0, 0, 0, 0]);
        let whole = decode_all(wire.clone());
        assert_eq!(whole.len(), 4);
        for split in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                // Feed byte by byte inside each part too: every boundary.
                for byte in part {
                    buf.put_u8(*byte);
                    while let Some(r) = decode(&mut buf).expect("valid") {
                        got.push(r);
                    }
                }
            }
            assert_eq!(got, whole, "split at {split}");
        }
        let end = parse_end_request(&whole[3].content).expect("end");
        assert_eq!(
            end,
            EndRequest {
                app_status: 7,
                protocol_status: REQUEST_COMPLETE
            }
        );
    }

    #[test]
    fn rejects_bad_version_and_short_end_request() {
        let mut buf = BytesMut::from(&[2u8, 6, 0, 1, 0, 0, 0, 0][..]);
        assert!(decode(&mut buf).is_err());
        assert!(parse_end_request(&[0, 0, 0]).is_err());
    }

    #[test]
    fn long_stream_data_is_chunked() {
        let data = vec![7u8; MAX_CONTENT * 2 + 3];
        let mut out = BytesMut::new();
        put_stream(&mut out, STDIN, 1, &data);
        let records = decode_all(out);
        let lens: Vec<_> = records.iter().map(|r| r.content.len()).collect();
        assert_eq!(lens, vec![MAX_CONTENT, MAX_CONTENT, 3]);
    }
}
