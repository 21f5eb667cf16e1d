//! Deterministic file content that compresses like a Windows install: a mix of text, code-like
//! bytes, tables and incompressible blocks, so LZX lands near a real install.wim's ratio.

/// SplitMix64: tiny, fast, and identical on every platform, which determinism needs.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Log-uniform in `lo..hi`: most values small, a long tail, like file sizes.
    pub fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo.max(1) as f64).ln(), (hi.max(lo + 1) as f64).ln());
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (l + (h - l) * u).exp() as u64
    }
}

const WORDS: &[&str] = &[
    "Microsoft",
    "Windows",
    "kernel",
    "driver",
    "registry",
    "service",
    "handle",
    "thread",
    "module",
    "section",
    "buffer",
    "object",
    "policy",
    "update",
    "manifest",
    "assembly",
    "component",
    "version",
    "publicKeyToken",
    "processorArchitecture",
    "amd64",
    "language",
    "neutral",
    "dependency",
    "file",
    "hash",
    "name",
    "type",
    "win32",
    "security",
    "trust",
    "requestedPrivileges",
    "level",
    "asInvoker",
    "uiAccess",
    "false",
    "true",
    "Device",
    "Class",
    "Provider",
    "Manufacturer",
    "HKLM",
    "SYSTEM",
    "CurrentControlSet",
    "Services",
];

/// What a file is, which decides how its bytes look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Manifests, INF, MUM: XML-ish text (compresses to ~15 %).
    Text,
    /// DLL/EXE/SYS: code, tables, strings, padding and some packed data.
    Binary,
    /// Fonts, cabinets, media: mostly incompressible.
    Packed,
}

/// `len` bytes for a file of `kind` from `seed`.
pub fn bytes(kind: Kind, seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 4096);
    while out.len() < len {
        let pick = rng.below(100);
        let block = match kind {
            Kind::Text => {
                if pick < 96 {
                    Block::Text
                } else {
                    Block::Random
                }
            }
            Kind::Binary => match pick {
                0..=6 => Block::Random,
                7..=39 => Block::Code,
                40..=79 => Block::Text,
                _ => Block::Zeros,
            },
            Kind::Packed => {
                if pick < 50 {
                    Block::Random
                } else {
                    Block::Code
                }
            }
        };
        block.append(&mut rng, &mut out);
    }
    out.truncate(len);
    out
}

enum Block {
    Random,
    Code,
    Text,
    Zeros,
}

const BLOCK: usize = 4096;

impl Block {
    fn append(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        match self {
            Block::Random => {
                for _ in 0..BLOCK / 8 {
                    out.extend_from_slice(&rng.next_u64().to_le_bytes());
                }
            }
            Block::Zeros => out.resize(out.len() + BLOCK, 0),
            Block::Code => {
                // A small opcode alphabet with varied operands: x86 code compresses about 2:1.
                const OPS: &[u8] = &[
                    0x48, 0x89, 0x8b, 0xe8, 0xff, 0x15, 0x85, 0xc0, 0x74, 0x0f, 0x84, 0x83, 0xc4,
                    0x5d, 0xc3, 0x33, 0xd2, 0x4c, 0x8d, 0x44, 0x24,
                ];
                let end = out.len() + BLOCK;
                while out.len() < end {
                    let r = rng.next_u64();
                    out.push(OPS[(r % OPS.len() as u64) as usize]);
                    out.push(OPS[((r >> 8) % OPS.len() as u64) as usize]);
                    if (r >> 16).is_multiple_of(6) {
                        out.extend_from_slice(&((r >> 24) as u16).to_le_bytes());
                    } else {
                        out.push((r >> 24) as u8 & 0x0f);
                    }
                }
            }
            Block::Text => {
                let end = out.len() + BLOCK;
                while out.len() < end {
                    let r = rng.next_u64();
                    let w = WORDS[(r % WORDS.len() as u64) as usize];
                    match (r >> 8) % 8 {
                        0 => out.extend_from_slice(b"<"),
                        1 => out.extend_from_slice(b"=\""),
                        2 => out.extend_from_slice(b"\" "),
                        3 => out.extend_from_slice(b"\r\n  "),
                        _ => out.push(b' '),
                    }
                    out.extend_from_slice(w.as_bytes());
                    if (r >> 12).is_multiple_of(4) {
                        out.extend_from_slice(format!("{}", (r >> 20) % 100_000).as_bytes());
                    }
                }
            }
        }
    }
}
