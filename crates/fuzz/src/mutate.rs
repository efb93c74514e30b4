//! A small mutator for the short runs under `cargo test`: deterministic, no instrumentation,
//! byte-level edits and splices of seeds, plus tokens of the text formats. The campaign's
//! coverage-guided mutation is libFuzzer's.

/// Tokens that take a text parser to its edges: delimiters, extreme numbers, keywords.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"\n",
    b"[[",
    b"]]",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e999",
    b"-1e999",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"1e-320",
    b"0.0",
    b"\"\"",
    b"{}",
    b"[]",
    b"\\u0000",
    b"inf",
    b"nan",
];

/// Edits inputs at random, from a seed: the same seed gives the same inputs.
pub struct Mutator {
    state: u64,
}

impl Mutator {
    pub fn new(seed: u64) -> Self {
        Mutator { state: seed }
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A mutation of one of `seeds` (1 to 4 edits), or now and then random bytes.
    pub fn mutate(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
        if seeds.is_empty() || self.below(32) == 0 {
            let len = self.below(64);
            return (0..len).map(|_| self.next() as u8).collect();
        }
        let mut data = seeds[self.below(seeds.len())].clone();
        for _ in 0..1 + self.below(4) {
            self.edit(&mut data, seeds);
        }
        data
    }

    fn edit(&mut self, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let len = data.len();
        let at = self.below(len + 1);
        match self.below(9) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << self.below(8),
            1 if len > 0 => data[at.min(len - 1)] = self.next() as u8,
            2 if len > 0 => {
                let v = [0x00, 0xFF, 0x7F, 0x80, 0x01][self.below(5)];
                data[at.min(len - 1)] = v;
            }
            3 => {
                let n = 1 + self.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| self.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let end = (at + 1 + self.below(16)).min(len);
                data.drain(at.min(end)..end);
            }
            5 => data.truncate(at),
            6 if len > 0 => {
                // Repeat a piece: lengths and nesting grow.
                let start = self.below(len);
                let end = (start + 1 + self.below(32)).min(len);
                let piece = data[start..end].to_vec();
                data.splice(at..at, piece);
            }
            7 => {
                let token = TOKENS[self.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            _ => {
                // Splice: the start of this input and the rest of another.
                let other = &seeds[self.below(seeds.len())];
                let from = self.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}
