//! The listing's query arguments: `C=`, `O=`, `F=`, `V=` and `P=`.

use super::config::IndexConfig;
use super::format::os_escape_path;
use super::options::{
    FANCY_INDEXING, IGNORE_CLIENT, SUPPRESS_COLSORT, TABLE_INDEXING, VERSION_SORT,
};
use super::SortKey;
use htgate_util::fnmatch::Flags;

/// `apr_fnmatch` flags of the `P=` pattern (`IndexOptions`): no escapes,
/// and a leading `.` only matched by a literal one.
pub(super) const P_FLAGS: Flags = Flags {
    noescape: true,
    period: true,
    ..Flags::NONE
};

/// The parsed query: sort key/direction, format/version overrides, the
/// `P=` pattern and the arguments to repeat in the column links.
pub(super) struct QueryArgs {
    pub(super) key: u8,
    pub(super) direction: u8,
    pub(super) opts: u32,
    pub(super) pattern: Option<Vec<u8>>,
    pub(super) colargs: Vec<u8>,
}

pub(super) fn parse_query(query: Option<&str>, cfg: &IndexConfig) -> QueryArgs {
    let (key, descending) = cfg.order_default.unwrap_or((SortKey::Name, false));
    let mut q = QueryArgs {
        key: key.letter(),
        direction: if descending { b'D' } else { b'A' },
        opts: cfg.options.opts,
        pattern: None,
        colargs: Vec::new(),
    };
    if q.opts & IGNORE_CLIENT != 0 {
        q.opts |= SUPPRESS_COLSORT;
        return q;
    }
    let mut fval: Vec<u8> = Vec::new();
    let mut vval: Vec<u8> = Vec::new();
    let mut ppre: &[u8] = b"";
    let mut epattern: Vec<u8> = Vec::new();
    let s = query.unwrap_or("").as_bytes();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    // An argument value must be followed by '&', ';' or the end.
    let ends = |i: usize| matches!(at(i), b'&' | b';' | 0);
    let mut i = 0usize;
    while i < s.len() {
        let step = if at(i + 3) != 0 { 4 } else { 3 };
        if at(i) == b'C' && at(i + 1) == b'=' && b"NMSD".contains(&at(i + 2)) && ends(i + 3) {
            q.key = at(i + 2);
            i += step;
        } else if at(i) == b'O'
            && at(i + 1) == b'='
            && matches!(at(i + 2), b'A' | b'D')
            && ends(i + 3)
        {
            q.direction = at(i + 2);
            i += step;
        } else if at(i) == b'F' && at(i + 1) == b'=' && b"012".contains(&at(i + 2)) && ends(i + 3) {
            match at(i + 2) {
                b'0' => q.opts &= !(FANCY_INDEXING | TABLE_INDEXING),
                b'1' => q.opts = (q.opts | FANCY_INDEXING) & !TABLE_INDEXING,
                _ => q.opts |= FANCY_INDEXING | TABLE_INDEXING,
            }
            fval = vec![b';', b'F', b'=', at(i + 2)];
            i += step;
        } else if at(i) == b'V'
            && at(i + 1) == b'='
            && matches!(at(i + 2), b'0' | b'1')
            && ends(i + 3)
        {
            if at(i + 2) == b'0' {
                q.opts &= !VERSION_SORT;
            } else {
                q.opts |= VERSION_SORT;
            }
            vval = vec![b';', b'V', b'=', at(i + 2)];
            i += step;
        } else if at(i) == b'P' && at(i + 1) == b'=' {
            let start = i + 2;
            let mut eos = start;
            while eos < s.len() && s[eos] != b'&' && s[eos] != b';' {
                eos += 1;
            }
            if eos == start {
                q.pattern = None;
            } else {
                // Apache ignores a pattern with a bad escape or an escaped `/` or NUL.
                match htgate_util::escape::unescape_url(&s[start..eos]).ok() {
                    Some(p) => {
                        ppre = b";P=";
                        epattern = os_escape_path(&p, true);
                        q.pattern = Some(p);
                    }
                    None => q.pattern = None,
                }
            }
            if eos < s.len() && eos + 1 < s.len() {
                i = eos + 1;
            } else {
                break;
            }
        } else {
            // Syntax error: Apache ignores the rest.
            break;
        }
    }
    q.colargs = [fval, vval, ppre.to_vec(), epattern].concat();
    q
}
