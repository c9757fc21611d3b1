//! `apr_password_validate`: checking a password against the hash in an
//! htpasswd file, for every format Apache's `htpasswd` writes and Linux's
//! crypt(3) reads.
//!
//! bcrypt (`$2y$`) and SHA-crypt (`$5$`, `$6$`) are the `bcrypt` and
//! `sha-crypt` crates.  Three formats no maintained crate does are here,
//! each checked against hashes made by Apache's `htpasswd` and OpenSSL:
//! Apache's own MD5 (`$apr1$`), the MD5-crypt it derives from (`$1$`,
//! the same algorithm with another magic string) and the traditional DES
//! crypt(3) of `htpasswd -d` (13 characters), which old sites still have.

use md5::{Digest, Md5};

/// `apr_password_validate`: the formats Apache's htpasswd writes.
pub(crate) fn verify(password: &str, hash: &str) -> bool {
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = hash.strip_prefix(magic) {
            let Some((salt, _)) = rest.split_once('$') else {
                return false;
            };
            let mine = md5_crypt(password.as_bytes(), salt.as_bytes(), magic);
            return constant_time_eq(mine.as_bytes(), hash.as_bytes());
        }
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        use base64::Engine;
        use sha1::Sha1;
        let digest = Sha1::digest(password.as_bytes());
        let mine = base64::engine::general_purpose::STANDARD.encode(digest);
        return constant_time_eq(mine.as_bytes(), b64.as_bytes());
    }
    if hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$") {
        // bcrypt, as OpenBSD and APR: passwords past 72 bytes truncated.
        return bcrypt::verify(password, hash).unwrap_or(false);
    }
    if hash.starts_with("$5$") {
        return sha_crypt::sha256_check(password, hash).is_ok();
    }
    if hash.starts_with("$6$") {
        return sha_crypt::sha512_check(password, hash).is_ok();
    }
    if hash.len() == 13 {
        return match des_crypt(password.as_bytes(), hash.as_bytes()) {
            Some(mine) => constant_time_eq(mine.as_bytes(), hash.as_bytes()),
            None => false,
        };
    }
    // Apache accepts plain text only on Windows and NetWare.
    false
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// MD5-crypt (`$1$`, Poul-Henning Kamp's) and Apache's variant of it,
/// `apr_md5_encode` (`$apr1$`): the magic string is mixed into the digest,
/// so one cannot check the other.
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic.as_bytes());
    ctx.update(salt);
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let fin = alt.finalize();
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&fin[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i != 0 {
        if i & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1.min(pw.len())]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 != 0 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if i % 3 != 0 {
            c.update(salt);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 != 0 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(37);
    out.push_str(magic);
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    to64((f(0) << 16) | (f(6) << 8) | f(12), 4);
    to64((f(1) << 16) | (f(7) << 8) | f(13), 4);
    to64((f(2) << 16) | (f(8) << 8) | f(14), 4);
    to64((f(3) << 16) | (f(9) << 8) | f(15), 4);
    to64((f(4) << 16) | (f(10) << 8) | f(5), 4);
    to64(f(11), 2);
    out
}

/// The crypt(3) alphabet: `.`, `/`, digits, upper case, lower case.
const CRYPT64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Traditional DES crypt(3), as Seventh Edition Unix wrote it and glibc
/// still reads it: the first eight characters' low seven bits are the DES
/// key, the two salt characters swap bits of the expansion table, and a
/// block of zeros is encrypted 25 times.  `setting` is the stored hash
/// (its first two characters are the salt).  `None` for a salt outside
/// the alphabet (glibc's crypt fails on it too).
fn des_crypt(pw: &[u8], setting: &[u8]) -> Option<String> {
    let salt = [*setting.first()?, *setting.get(1)?];
    let mut key = [0u8; 64];
    for (i, &c) in pw.iter().take(8).enumerate() {
        for j in 0..7 {
            key[i * 8 + j] = (c >> (6 - j)) & 1;
        }
    }
    let ks = des::key_schedule(&key);
    let mut e = des::E;
    for (i, &c) in salt.iter().enumerate() {
        let v = CRYPT64.iter().position(|&x| x == c)?;
        for j in 0..6 {
            if (v >> j) & 1 == 1 {
                e.swap(6 * i + j, 6 * i + j + 24);
            }
        }
    }
    let mut block = [0u8; 66];
    for _ in 0..25 {
        des::encrypt(&mut block, &ks, &e);
    }
    let mut out = String::with_capacity(13);
    out.push(char::from(salt[0]));
    out.push(char::from(salt[1]));
    for i in 0..11 {
        let v = (0..6).fold(0usize, |acc, j| (acc << 1) | usize::from(block[6 * i + j]));
        out.push(char::from(CRYPT64[v]));
    }
    Some(out)
}

/// DES on bit arrays (one `u8` per bit, as the V7 source did): slow and
/// plain, which is what a 25-round password check of a legacy format
/// needs.  The tables are FIPS 46-3's.
mod des {
    const IP: [u8; 64] = [
        58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14,
        6, 64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11,
        3, 61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
    ];
    const FP: [u8; 64] = [
        40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31, 38, 6, 46, 14, 54, 22, 62,
        30, 37, 5, 45, 13, 53, 21, 61, 29, 36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19,
        59, 27, 34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
    ];
    const PC1_C: [u8; 28] = [
        57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
        60, 52, 44, 36,
    ];
    const PC1_D: [u8; 28] = [
        63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37, 29, 21, 13,
        5, 28, 20, 12, 4,
    ];
    const SHIFTS: [u8; 16] = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
    const PC2_C: [u8; 24] = [
        14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
    ];
    const PC2_D: [u8; 24] = [
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29,
        32,
    ];
    /// The expansion table, before a salt perturbs it.
    pub(super) const E: [u8; 48] = [
        32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17, 16, 17,
        18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1,
    ];
    const S: [[u8; 64]; 8] = [
        [
            14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6,
            12, 11, 9, 5, 3, 8, 4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2,
            4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13,
        ],
        [
            15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0,
            1, 10, 6, 9, 11, 5, 0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1,
            3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9,
        ],
        [
            10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8,
            5, 14, 12, 11, 15, 1, 13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13,
            0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12,
        ],
        [
            7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7,
            2, 12, 1, 10, 14, 9, 10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6,
            10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14,
        ],
        [
            2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0,
            15, 10, 3, 9, 8, 6, 4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7,
            1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3,
        ],
        [
            12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1,
            13, 14, 0, 11, 3, 8, 9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12,
            9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13,
        ],
        [
            4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3,
            5, 12, 2, 15, 8, 6, 1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8,
            1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12,
        ],
        [
            13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5,
            6, 11, 0, 14, 9, 2, 7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7,
            4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11,
        ],
    ];
    const P: [u8; 32] = [
        16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10, 2, 8, 24, 14, 32, 27, 3, 9,
        19, 13, 30, 6, 22, 11, 4, 25,
    ];

    /// The 16 round keys of a 64-bit key (one bit per byte).
    pub(super) fn key_schedule(key: &[u8; 64]) -> [[u8; 48]; 16] {
        let mut c: [u8; 28] = std::array::from_fn(|i| key[usize::from(PC1_C[i]) - 1]);
        let mut d: [u8; 28] = std::array::from_fn(|i| key[usize::from(PC1_D[i]) - 1]);
        let mut ks = [[0u8; 48]; 16];
        for (round, k) in ks.iter_mut().enumerate() {
            c.rotate_left(usize::from(SHIFTS[round]));
            d.rotate_left(usize::from(SHIFTS[round]));
            for j in 0..24 {
                k[j] = c[usize::from(PC2_C[j]) - 1];
                k[j + 24] = d[usize::from(PC2_D[j]) - 29];
            }
        }
        ks
    }

    /// Encrypts the first 64 bits of `block` in place with expansion
    /// table `e`.
    pub(super) fn encrypt(block: &mut [u8; 66], ks: &[[u8; 48]; 16], e: &[u8; 48]) {
        let mut lr: [u8; 64] = std::array::from_fn(|j| block[usize::from(IP[j]) - 1]);
        for k in ks {
            let (l, r) = lr.split_at_mut(32);
            let mut f = [0u8; 32];
            for (j, out) in f.chunks_mut(4).enumerate() {
                let pre = |n: usize| r[usize::from(e[6 * j + n]) - 1] ^ k[6 * j + n];
                let idx = (pre(0) << 5)
                    | (pre(5) << 4)
                    | (pre(1) << 3)
                    | (pre(2) << 2)
                    | (pre(3) << 1)
                    | pre(4);
                let s = S[j][usize::from(idx)];
                for (b, o) in out.iter_mut().enumerate() {
                    *o = (s >> (3 - b)) & 1;
                }
            }
            let new_r: [u8; 32] = std::array::from_fn(|j| l[j] ^ f[usize::from(P[j]) - 1]);
            l.copy_from_slice(r);
            r.copy_from_slice(&new_r);
        }
        // The last round's halves are not swapped.
        let (l, r) = lr.split_at_mut(32);
        l.swap_with_slice(r);
        for j in 0..64 {
            block[j] = lr[usize::from(FP[j]) - 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_crypt_matches_htpasswd_d() {
        // `htpasswd -nbd` (Apache 2.4.71's, glibc's crypt).
        for (pw, hash) in [
            ("secret4", "jX4i34wFHcDkU"),
            ("secret4", "C38J4i3yesUXU"),
            ("a", "/0BcGNL/pn0aM"),
            ("password", "247SSw8klbYoU"),
            // Only the first eight characters count.
            ("longerpassword123", "2fBJbAvGXeBc6"),
            ("longerpa", "2fBJbAvGXeBc6"),
        ] {
            assert!(verify(pw, hash), "{pw} {hash}");
            assert!(!verify("wrong", hash), "{hash}");
        }
        assert!(!verify("a", "!0BcGNL/pn0aM"), "a salt outside the alphabet");
    }

    #[test]
    fn md5_crypt_and_sha_crypt_match_openssl() {
        // `openssl passwd -1 / -5 -salt abcdefgh secret`.
        assert!(verify("secret", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"));
        assert!(!verify("secreT", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"));
        assert!(verify(
            "secret",
            "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM."
        ));
        assert!(
            !verify("$1$abcdefgh", "$1$abcdefgh"),
            "a hash without its digest"
        );
    }
}
