//! Opening a `.ember` file from disk by mmap (std only).

use std::format;
use std::fs::File;
use std::path::Path;

use ember_format::EmberFile;

/// A `.ember` file mapped read-only into memory. The OS pages weights in on first use, so
/// opening is instant and memory is shared with the page cache.
pub struct MappedFile {
    map: memmap2::Mmap,
}

impl MappedFile {
    /// Maps `path` and validates its structure (not its checksum).
    pub fn open(path: &Path) -> Result<Self, std::io::Error> {
        let file = File::open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        // SAFETY: the map is read-only; like every mmap reader we rely on the file not being
        // truncated by another process while mapped (the OS would deliver SIGBUS).
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        let mapped = MappedFile { map };
        mapped.parse().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(mapped)
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The parsed file (already validated in `open`, so this is cheap and cannot fail
    /// differently).
    pub fn parse(&self) -> Result<EmberFile<'_>, ember_format::Error> {
        EmberFile::parse(&self.map)
    }
}
