//! The checks a hive file's base block (its first 4 KiB) must pass before hivex opens it:
//! hivex would open a hive whose sequence numbers differ (pending transaction logs), and names
//! other refusals only by an errno.

use std::io::Read;
use std::path::Path;

use super::RegistryError;

/// The base block's size; hive bins follow it.
pub const BASE_BLOCK_BYTES: usize = 0x1000;
/// A base block and one hive bin, the least hivex opens.
const MIN_HIVE_BYTES: u64 = 0x2000;
/// Real hives stay far below this (SOFTWARE is 50–150 MiB); hivex holds the whole hive in
/// memory while it writes, so a larger file is refused before it is read.
pub const MAX_HIVE_BYTES: u64 = crate::image::hive::MAX_HIVE_BYTES;

/// Reads `path`'s base block and checks it: the `regf` signature, format version 1, a primary
/// file (not a transaction log), equal sequence numbers (a cleanly unloaded hive) and a
/// matching checksum. Returns the sequence number.
pub fn check(path: &Path, origin: &str) -> Result<u32, RegistryError> {
    let io = |doing: &'static str| {
        move |source| RegistryError::Io {
            origin: origin.to_string(),
            doing,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut file = std::fs::File::open(path).map_err(io("open"))?;
    let size = file.metadata().map_err(io("read the size of"))?.len();
    if size > MAX_HIVE_BYTES {
        return Err(RegistryError::HiveTooLarge {
            origin: origin.to_string(),
            size,
            limit: MAX_HIVE_BYTES,
        });
    }
    let damaged = |detail: String| RegistryError::Damaged {
        origin: origin.to_string(),
        detail,
    };
    if size < MIN_HIVE_BYTES {
        return Err(damaged(format!(
            "it is {size} bytes, less than the {MIN_HIVE_BYTES} of a base block and one hive bin"
        )));
    }
    let mut block = [0u8; BASE_BLOCK_BYTES];
    file.read_exact(&mut block).map_err(io("read"))?;
    check_bytes(&block, origin)
}

/// [`check`] on base block bytes already read.
pub fn check_bytes(block: &[u8; BASE_BLOCK_BYTES], origin: &str) -> Result<u32, RegistryError> {
    let damaged = |detail: String| RegistryError::Damaged {
        origin: origin.to_string(),
        detail,
    };
    if !block.starts_with(b"regf") {
        return Err(damaged(
            "it does not start with the registry hive signature \"regf\"".into(),
        ));
    }
    let dword =
        |at: usize| u32::from_le_bytes([block[at], block[at + 1], block[at + 2], block[at + 3]]);
    let (primary, secondary) = (dword(0x04), dword(0x08));
    let checksum_holds = checksum_holds(block);
    if primary != secondary {
        // Windows writes a valid checksum with each sequence number, so only then is the
        // hive dirty rather than damaged.
        if checksum_holds {
            return Err(RegistryError::NotCleanlyUnloaded {
                origin: origin.to_string(),
                primary,
                secondary,
            });
        }
        return Err(damaged(format!(
            "its base block's checksum does not match (and its sequence numbers {primary} and {secondary} differ)"
        )));
    }
    if !checksum_holds {
        return Err(damaged("its base block's checksum does not match".into()));
    }
    let major = dword(0x14);
    if major != 1 {
        return Err(damaged(format!(
            "its format version is {major}.{}, not 1.x",
            dword(0x18)
        )));
    }
    let file_type = dword(0x1c);
    if file_type != 0 {
        return Err(damaged(format!(
            "its base block says file type {file_type}: it is a transaction log (.LOG1/.LOG2), not a hive"
        )));
    }
    Ok(primary)
}

/// Does the base block's stored checksum match, in Windows' form or hivex's? Also what the
/// SOFTWARE hive reader uses to tell a dirty hive from a damaged one.
pub(crate) fn checksum_holds(block: &[u8]) -> bool {
    let Some(stored) = block.get(0x1fc..0x200) else {
        return false;
    };
    let stored = u32::from_le_bytes([stored[0], stored[1], stored[2], stored[3]]);
    stored == checksum(block) || stored == plain_xor(block)
}

/// The base block's checksum as Windows writes it: the XOR of its first 127 dwords, 0 and
/// 0xFFFFFFFF standing for 1 and 0xFFFFFFFE.
fn checksum(block: &[u8]) -> u32 {
    match plain_xor(block) {
        0 => 1,
        u32::MAX => u32::MAX - 1,
        s => s,
    }
}

/// The XOR alone, which hivex writes and checks: it differs from Windows' form only when the
/// XOR is 0 or 0xFFFFFFFF, and either form is a sound base block.
fn plain_xor(block: &[u8]) -> u32 {
    block[..0x1fc].chunks_exact(4).fold(0, |sum, d| {
        sum ^ u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(primary: u32, secondary: u32) -> [u8; BASE_BLOCK_BYTES] {
        let mut b = [0u8; BASE_BLOCK_BYTES];
        b[..4].copy_from_slice(b"regf");
        b[4..8].copy_from_slice(&primary.to_le_bytes());
        b[8..12].copy_from_slice(&secondary.to_le_bytes());
        b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
        b[0x18..0x1c].copy_from_slice(&5u32.to_le_bytes());
        seal(&mut b);
        b
    }

    fn seal(b: &mut [u8; BASE_BLOCK_BYTES]) {
        let sum = checksum(b);
        b[0x1fc..0x200].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn a_clean_base_block_passes_with_its_sequence_number() {
        assert_eq!(check_bytes(&block(7, 7), "H").expect("clean"), 7);
    }

    #[test]
    fn differing_sequence_numbers_are_dirty_when_the_checksum_holds_and_damage_otherwise() {
        let err = check_bytes(&block(8, 7), "H").expect_err("dirty");
        assert!(
            matches!(
                err,
                RegistryError::NotCleanlyUnloaded {
                    primary: 8,
                    secondary: 7,
                    ..
                }
            ),
            "{err:?}"
        );
        let mut b = block(8, 7);
        b[0x30] ^= 1;
        let err = check_bytes(&b, "H").expect_err("damaged");
        assert!(matches!(err, RegistryError::Damaged { .. }), "{err:?}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn other_headers_are_named_as_damage() {
        let mut b = block(1, 1);
        b[0] = b'x';
        assert!(check_bytes(&b, "H")
            .expect_err("signature")
            .to_string()
            .contains("\"regf\""));
        let mut b = block(1, 1);
        b[0x14] = 2;
        seal(&mut b);
        assert!(check_bytes(&b, "H")
            .expect_err("version")
            .to_string()
            .contains("format version is 2.5"));
        let mut b = block(1, 1);
        b[0x1c] = 6;
        seal(&mut b);
        assert!(check_bytes(&b, "H")
            .expect_err("log")
            .to_string()
            .contains("transaction log"));
    }
}
