//! JSON string literals for the documents ingest writes, byte for byte as `serde_json` writes
//! them, but skipping sixteen bytes at a time (SSE2; eight elsewhere) while none needs escaping
//! (Korean text is almost all multi-byte characters, which never do).

/// Bytes that a JSON string escapes: control characters, `"` and `\`.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of the little-endian word `w` needs escaping (exact, no false negatives).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    (below_space | quote | slash) & HIGH != 0
}

/// Index of the first byte of `b` from `i` on that needs escaping, or `b.len()`.
fn next_escape(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        while i + 16 <= b.len() {
            // SAFETY: SSE2 is part of every x86-64 CPU; the unaligned load reads b[i..i + 16],
            // in bounds by the loop condition.
            let m = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast());
                // v ≤ 0x1f (unsigned) ⇔ min(v, 0x1f) = v
                let ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
                let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
                let slash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
                _mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(quote, slash)))
            };
            if m != 0 {
                return i + m.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while let Some(w) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        if word_needs_escape(w) {
            break;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|c| !needs_escape(*c)) {
        i += 1;
    }
    i
}

/// Appends `s` as a quoted JSON string: `\"`, `\\`, `\b \f \n \r \t`, and `\u00xx` (lower-case
/// hex) for the other control characters, as `serde_json::to_writer` does.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_escape(b, start);
        out.extend_from_slice(&b[start..i]);
        let Some(&c) = b.get(i) else { break };
        escape(out, c);
        start = i + 1;
    }
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match c {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests {
    use super::push_str;

    fn serde(s: &str) -> Vec<u8> {
        serde_json::to_vec(s).unwrap()
    }

    #[test]
    fn escapes_exactly_as_serde_json() {
        let mut cases: Vec<String> = vec![
            String::new(),
            "안녕하세요, 세계".into(),
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{0}i\u{1f}j\u{7f}".into(),
            "\"\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\".into(),
            "한국어 문장\n다음 줄 \"인용\" 끝\\".into(),
        ];
        // Every byte value at every position of a word, among Hangul and ASCII.
        // (33 bytes: the first and second sixteen-byte blocks and the tail.)
        let base: Vec<char> = "가나다abc가나다abc가나다".chars().collect();
        for c in 0u8..0x80 {
            for pos in 0..=base.len() {
                let mut s = base.clone();
                s.insert(pos, c as char);
                cases.push(s.into_iter().collect());
            }
        }
        // Pseudo-random strings over a small alphabet that is mostly escapes.
        let alphabet = [
            'a', '"', '\\', '\n', '\u{1}', '가', 'é', ' ', '\u{7f}', '\t',
        ];
        let mut x = 12345u64;
        for len in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(x >> 33) as usize % alphabet.len()]
                })
                .collect();
            cases.push(s);
        }
        for s in &cases {
            let mut out = b"prefix".to_vec();
            push_str(&mut out, s);
            assert_eq!(&out[6..], serde(s).as_slice(), "{s:?}");
        }
    }
}
