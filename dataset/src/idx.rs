//! MNIST's idx format: a big-endian header (two zero bytes, a type code, the
//! rank, then one u32 per dimension) followed by the data. Only unsigned
//! bytes (type 0x08) are used by MNIST and supported here.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why an idx file could not be read.
#[derive(Debug)]
pub enum IdxError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not an idx file of unsigned bytes, or inconsistent with its header.
    Format {
        path: PathBuf,
        reason: String,
    },
    /// Images and labels that do not belong together.
    Mismatch {
        reason: String,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdxError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            IdxError::Format { path, reason } => write!(f, "{}: not a usable idx file: {reason}", path.display()),
            IdxError::Mismatch { reason } => f.write_str(reason),
        }
    }
}

impl std::error::Error for IdxError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdxError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An idx array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The largest idx payload we accept (MNIST train images are 47 MB); a
/// header declaring more is rejected before anything is allocated.
const MAX_PAYLOAD: usize = 1 << 30;

/// Parses idx bytes (already decompressed).
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray, IdxError> {
    let fail = |reason: String| IdxError::Format { path: path.to_path_buf(), reason };
    if bytes.len() < 4 {
        return Err(fail(format!("{} bytes is shorter than the 4-byte magic", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(fail(format!("magic starts {:02x} {:02x}, expected 00 00", bytes[0], bytes[1])));
    }
    if bytes[2] != 0x08 {
        return Err(fail(format!("element type {:#04x}, only unsigned bytes (0x08) are supported", bytes[2])));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(fail("rank 0".into()));
    }
    let header_len = 4 + 4 * rank;
    if bytes.len() < header_len {
        return Err(fail(format!("header needs {header_len} bytes, file has {}", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header_len].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let len = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_PAYLOAD);
    let Some(len) = len else {
        return Err(fail(format!("dimensions {dims:?} declare more than {MAX_PAYLOAD} bytes")));
    };
    let data = &bytes[header_len..];
    if data.len() != len {
        return Err(fail(format!("dimensions {dims:?} need {len} data bytes, file has {}", data.len())));
    }
    Ok(IdxArray { dims, data: data.to_vec() })
}

/// Reads an idx file, which must be a regular file (not a FIFO or a
/// device: see [`crate::regular_file`]); a name ending in `.gz` is
/// gunzipped.
pub fn read(path: &Path) -> Result<IdxArray, IdxError> {
    let io = |source| IdxError::Io { path: path.to_path_buf(), source };
    // Before opening: a FIFO would block the open, a device never ends.
    crate::regular_file(path).map_err(io)?;
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(MAX_PAYLOAD as u64 + 1024)
            .read_to_end(&mut out)
            .map_err(|e| IdxError::Format { path: path.to_path_buf(), reason: format!("gzip: {e}") })?;
        out
    } else {
        raw
    };
    parse(&bytes, path)
}

/// Square grayscale images, `count × side × side`.
#[derive(Clone, Debug)]
pub struct Images {
    pub side: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn len(&self) -> usize {
        self.pixels.len() / (self.side * self.side)
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    pub fn get(&self, i: usize) -> &[u8] {
        let n = self.side * self.side;
        &self.pixels[i * n..][..n]
    }

    pub fn iter(&self) -> std::slice::ChunksExact<'_, u8> {
        self.pixels.chunks_exact(self.side * self.side)
    }
}

/// Reads a rank-3 idx file of square images.
pub fn read_images(path: &Path) -> Result<Images, IdxError> {
    let a = read(path)?;
    match a.dims[..] {
        [_, h, w] if h == w && h > 0 => Ok(Images { side: h, pixels: a.data }),
        _ => Err(IdxError::Format {
            path: path.to_path_buf(),
            reason: format!("dimensions {:?} are not [count, side, side] images", a.dims),
        }),
    }
}

/// Reads a rank-1 idx file of labels.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    let a = read(path)?;
    if a.dims.len() != 1 {
        return Err(IdxError::Format {
            path: path.to_path_buf(),
            reason: format!("dimensions {:?} are not [count] labels", a.dims),
        });
    }
    Ok(a.data)
}

/// Reads images and labels and checks they belong together.
pub fn read_labelled(images: &Path, labels: &Path) -> Result<(Images, Vec<u8>), IdxError> {
    let (imgs, labs) = (read_images(images)?, read_labels(labels)?);
    if imgs.len() != labs.len() {
        return Err(IdxError::Mismatch {
            reason: format!(
                "{} holds {} images but {} holds {} labels",
                images.display(),
                imgs.len(),
                labels.display(),
                labs.len()
            ),
        });
    }
    Ok((imgs, labs))
}

/// Encodes an idx file of unsigned bytes (for tests and tools).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let p = Path::new("t.idx");
        let bytes = encode(&[2, 3, 3], &[7; 18]);
        assert_eq!(parse(&bytes, p).unwrap(), IdxArray { dims: vec![2, 3, 3], data: vec![7; 18] });
        let err = |b: &[u8]| parse(b, p).unwrap_err().to_string();
        assert!(err(&bytes[..3]).contains("shorter than the 4-byte magic"));
        assert!(err(&[1, 0, 8, 1]).contains("magic starts 01 00"));
        assert!(err(&[0, 0, 0x0d, 1]).contains("element type 0x0d"));
        assert!(err(&[0, 0, 8, 0]).contains("rank 0"));
        assert!(err(&bytes[..9]).contains("header needs 16 bytes"));
        assert!(err(&bytes[..20]).contains("need 18 data bytes, file has 4"));
        assert!(err(&encode(&[u32::MAX as usize, u32::MAX as usize, 2], &[])).contains("declare more than"));
    }

    #[test]
    fn shipped_test_set_matches_published_counts() {
        let (images, labels) = crate::shipped_test_set();
        let (imgs, labs) = read_labelled(&images, &labels).unwrap();
        assert_eq!((imgs.len(), imgs.side), (10_000, 28));
        let mut counts = [0usize; 10];
        for &l in &labs {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    }
}
