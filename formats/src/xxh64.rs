//! XXH64 (seed 0), the checksum of a `.ember` file. A streaming implementation so the
//! writer can hash sections in place; any xxHash library computes the same value.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Streaming XXH64 hasher.
#[derive(Clone, Debug)]
pub struct Xxh64 {
    v: [u64; 4],
    buf: [u8; 32],
    buf_len: usize,
    total: u64,
}

impl Default for Xxh64 {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Xxh64 {
    pub fn new(seed: u64) -> Self {
        Self {
            v: [
                seed.wrapping_add(P1).wrapping_add(P2),
                seed.wrapping_add(P2),
                seed,
                seed.wrapping_sub(P1),
            ],
            buf: [0; 32],
            buf_len: 0,
            total: 0,
        }
    }

    fn stripe(&mut self, s: &[u8]) {
        for (i, v) in self.v.iter_mut().enumerate() {
            *v = round(*v, read_u64(&s[i * 8..]));
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (32 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 32 {
                return;
            }
            let buf = self.buf;
            self.stripe(&buf);
            self.buf_len = 0;
        }
        let mut chunks = data.chunks_exact(32);
        for c in &mut chunks {
            self.stripe(c);
        }
        let rest = chunks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut h = if self.total >= 32 {
            let [v1, v2, v3, v4] = self.v;
            let mut h = v1
                .rotate_left(1)
                .wrapping_add(v2.rotate_left(7))
                .wrapping_add(v3.rotate_left(12))
                .wrapping_add(v4.rotate_left(18));
            for v in self.v {
                h = merge(h, v);
            }
            h
        } else {
            self.v[2].wrapping_add(P5)
        };
        h = h.wrapping_add(self.total);
        let mut rest = &self.buf[..self.buf_len];
        while rest.len() >= 8 {
            h = (h ^ round(0, read_u64(rest)))
                .rotate_left(27)
                .wrapping_mul(P1)
                .wrapping_add(P4);
            rest = &rest[8..];
        }
        if rest.len() >= 4 {
            h = (h ^ (read_u32(rest) as u64).wrapping_mul(P1))
                .rotate_left(23)
                .wrapping_mul(P2)
                .wrapping_add(P3);
            rest = &rest[4..];
        }
        for &b in rest {
            h = (h ^ (b as u64).wrapping_mul(P5))
                .rotate_left(11)
                .wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// XXH64 of one buffer with seed 0.
pub fn xxh64(data: &[u8]) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(data);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        for split in [0, 1, 5, 31, 32, 33, 64, 100, 199, 200] {
            let mut h = Xxh64::new(0);
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish(), xxh64(&data), "split {split}");
        }
    }

    /// Known answers from the reference implementation (xxHash 0.8.4 through the `xxhash`
    /// Python package: xxh64_vectors.py beside this file prints them), at lengths that take
    /// every path: the short tails and one or more 32-byte stripes, as every real file does.
    #[test]
    fn known_vectors_reference() {
        // (len, seed, xxh64 of data[..len]), data[i] = (i * 131 + 7) mod 256
        const PATTERN: [(usize, u64, u64); 48] = [
            (0, 0x0000000000000000, 0xEF46DB3751D8E999),
            (0, 0x9E3779B97F4A7C15, 0xC4349FC93C010000),
            (1, 0x0000000000000000, 0xA96C7F0CE858BBB7),
            (1, 0x9E3779B97F4A7C15, 0x585882422A6165E7),
            (3, 0x0000000000000000, 0xBED43740EE6332BB),
            (3, 0x9E3779B97F4A7C15, 0x45FA1406538FA168),
            (4, 0x0000000000000000, 0xFA212AE44B3BB23D),
            (4, 0x9E3779B97F4A7C15, 0xA65107F22943365A),
            (7, 0x0000000000000000, 0x2744460DD675D2C0),
            (7, 0x9E3779B97F4A7C15, 0xC9B637E2C4599DE2),
            (8, 0x0000000000000000, 0x994B676B71CE94DD),
            (8, 0x9E3779B97F4A7C15, 0xCE592D5F53E192EC),
            (15, 0x0000000000000000, 0x09E6451ED2FF8B1D),
            (15, 0x9E3779B97F4A7C15, 0x47A857D1F90C35E1),
            (16, 0x0000000000000000, 0x94AD0095E72B24D5),
            (16, 0x9E3779B97F4A7C15, 0x3F8FEA7C86A04013),
            (31, 0x0000000000000000, 0x6711D55E306B5D8F),
            (31, 0x9E3779B97F4A7C15, 0x24C4E99AB0404B5E),
            (32, 0x0000000000000000, 0x07F7B8E3BC5D6E25),
            (32, 0x9E3779B97F4A7C15, 0x046E99BBDA1A814B),
            (33, 0x0000000000000000, 0x09F85EEB4E1CBE9F),
            (33, 0x9E3779B97F4A7C15, 0xD7FE2BFEE6E4CDED),
            (36, 0x0000000000000000, 0xE7AC625222F2B655),
            (36, 0x9E3779B97F4A7C15, 0x44A51E89FA88BFCC),
            (40, 0x0000000000000000, 0xD25150177BA46490),
            (40, 0x9E3779B97F4A7C15, 0x09EAE257F2239C63),
            (63, 0x0000000000000000, 0xB7C9968C066CB6A5),
            (63, 0x9E3779B97F4A7C15, 0xBD457F9EA47180C8),
            (64, 0x0000000000000000, 0x50D4159A0411632E),
            (64, 0x9E3779B97F4A7C15, 0xA768F350A8E4FCF6),
            (65, 0x0000000000000000, 0xD277176BFF863EFC),
            (65, 0x9E3779B97F4A7C15, 0xFE99AB21E40D4B0C),
            (100, 0x0000000000000000, 0x9DDADA11D3DC2D8F),
            (100, 0x9E3779B97F4A7C15, 0x35546BD9A4779AE4),
            (127, 0x0000000000000000, 0x54CF771B5423F6A7),
            (127, 0x9E3779B97F4A7C15, 0x8389D390668F5F23),
            (128, 0x0000000000000000, 0x0430E433B792E757),
            (128, 0x9E3779B97F4A7C15, 0xA17EF243CE1FF792),
            (129, 0x0000000000000000, 0x1F9708E5A00618FA),
            (129, 0x9E3779B97F4A7C15, 0xB5D711B6226E05B6),
            (255, 0x0000000000000000, 0x15A6DB05D4E83DF4),
            (255, 0x9E3779B97F4A7C15, 0xF91CB247D93DFE82),
            (1000, 0x0000000000000000, 0x0BF0BDBCC82EB373),
            (1000, 0x9E3779B97F4A7C15, 0x3ECB5D7B5E7C64CF),
            (4096, 0x0000000000000000, 0xCF05ADF75ACA30CF),
            (4096, 0x9E3779B97F4A7C15, 0x1ED4FA0C97932CBF),
            (100003, 0x0000000000000000, 0xB50AD3CD166FE52B),
            (100003, 0x9E3779B97F4A7C15, 0x8DE0C0E2B82C579E),
        ];
        let data: [u8; 100_003] = core::array::from_fn(|i| ((i * 131 + 7) % 256) as u8);
        for (n, seed, want) in PATTERN {
            let mut h = Xxh64::new(seed);
            h.update(&data[..n]);
            assert_eq!(h.finish(), want, "len {n} seed {seed:#x}");
            // The same through the streaming path, fed in uneven pieces.
            let mut h = Xxh64::new(seed);
            for chunk in data[..n].chunks(13) {
                h.update(chunk);
            }
            assert_eq!(h.finish(), want, "len {n} seed {seed:#x}, streamed");
        }
        // (len, xxh64 of TEXT repeated, [..len])
        const TEXT_VECTORS: [(usize, u64); 5] = [
            (32, 0xE2BBC9136629A4EE),
            (43, 0x0B242D361FDA71BC),
            (64, 0x882FB7E77EB99AA3),
            (85, 0xB57BFE60A99177B8),
            (200, 0xDEB77DAD8A4968F8),
        ];
        const TEXT: &[u8] =
            b"The quick brown fox jumps over the lazy dog; the ember format checksums every byte. ";
        let text: [u8; 4 * TEXT.len()] = core::array::from_fn(|i| TEXT[i % TEXT.len()]);
        for (n, want) in TEXT_VECTORS {
            assert_eq!(xxh64(&text[..n]), want, "text len {n}");
        }
    }
}
