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

/// The header of an idx file: its dimensions, and the data bytes they
/// declare (at most [`MAX_PAYLOAD`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub dims: Vec<usize>,
    pub len: usize,
}

impl Header {
    /// Its size in the file: the magic and one u32 per dimension.
    pub fn size(&self) -> usize {
        4 + 4 * self.dims.len()
    }

    /// Reads and checks a header from the start of `input`, reading exactly
    /// its bytes.
    fn read(input: &mut impl Read, path: &Path) -> Result<Header, IdxError> {
        let fail = |reason: String| IdxError::Format { path: path.to_path_buf(), reason };
        let mut magic = [0u8; 4];
        let got = read_up_to(input, &mut magic, path)?;
        if got < 4 {
            return Err(fail(format!("{got} bytes is shorter than the 4-byte magic")));
        }
        if magic[0] != 0 || magic[1] != 0 {
            return Err(fail(format!("magic starts {:02x} {:02x}, expected 00 00", magic[0], magic[1])));
        }
        if magic[2] != 0x08 {
            return Err(fail(format!("element type {:#04x}, only unsigned bytes (0x08) are supported", magic[2])));
        }
        let rank = magic[3] as usize;
        if rank == 0 {
            return Err(fail("rank 0".into()));
        }
        let mut raw = vec![0u8; 4 * rank];
        let got = read_up_to(input, &mut raw, path)?;
        if got < raw.len() {
            return Err(fail(format!("header needs {} bytes, file has {}", 4 + raw.len(), 4 + got)));
        }
        let dims: Vec<usize> =
            raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
        let len = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).filter(|&n| n <= MAX_PAYLOAD);
        let Some(len) = len else {
            return Err(fail(format!("dimensions {dims:?} declare more than {MAX_PAYLOAD} bytes")));
        };
        Ok(Header { dims, len })
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8], path: &Path) -> Result<usize, IdxError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e, path)),
        }
    }
    Ok(got)
}

fn read_error(e: std::io::Error, path: &Path) -> IdxError {
    match e.kind() {
        // flate2's words for a damaged stream.
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            IdxError::Format { path: path.to_path_buf(), reason: format!("gzip: {e}") }
        }
        _ => IdxError::Io { path: path.to_path_buf(), source: e },
    }
}

/// Parses idx bytes (already decompressed).
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray, IdxError> {
    let mut input = bytes;
    let header = Header::read(&mut input, path)?;
    read_data(header, &mut input, path)
}

/// Reads the data `header` declares from `input`, which must hold exactly
/// that many bytes more: the buffer is sized from the (bounded) header, and
/// nothing past one byte more is read.
fn read_data(header: Header, input: &mut impl Read, path: &Path) -> Result<IdxArray, IdxError> {
    let mut data = Vec::with_capacity(header.len);
    input.take(header.len as u64 + 1).read_to_end(&mut data).map_err(|e| read_error(e, path))?;
    if data.len() != header.len {
        let has = if data.len() > header.len { "more".to_string() } else { data.len().to_string() };
        return Err(IdxError::Format {
            path: path.to_path_buf(),
            reason: format!("dimensions {:?} need {} data bytes, file has {has}", header.dims, header.len),
        });
    }
    Ok(IdxArray { dims: header.dims, data })
}

/// An idx file opened and its header read, the data not yet.
struct Opened<'a> {
    path: PathBuf,
    header: Header,
    input: Box<dyn Read + 'a>,
}

/// Opens an idx file, which must be a regular file (not a FIFO or a
/// device: see [`crate::regular_file`]); a name ending in `.gz` is
/// gunzipped as it is read. A plain file's size must be what its header
/// declares; a gzipped one is checked as it is read.
fn open(path: &Path) -> Result<Opened<'static>, IdxError> {
    let io = |source| IdxError::Io { path: path.to_path_buf(), source };
    // Before opening: a FIFO would block the open, a device never ends.
    let size = crate::regular_file(path).map_err(io)?;
    let file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let mut input: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let header = Header::read(&mut input, path)?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    if !gz && size != (header.size() + header.len) as u64 {
        return Err(IdxError::Format {
            path: path.to_path_buf(),
            reason: format!(
                "dimensions {:?} need {} data bytes, file has {}",
                header.dims,
                header.len,
                size.saturating_sub(header.size() as u64)
            ),
        });
    }
    Ok(Opened { path: path.to_path_buf(), header, input })
}

impl Opened<'_> {
    fn read(mut self) -> Result<IdxArray, IdxError> {
        read_data(self.header, &mut self.input, &self.path)
    }

    /// The side of `[count, side, side]` images, or why it is not that.
    fn image_side(&self) -> Result<usize, IdxError> {
        match self.header.dims[..] {
            [_, h, w] if h == w && h > 0 => Ok(h),
            _ => Err(IdxError::Format {
                path: self.path.clone(),
                reason: format!("dimensions {:?} are not [count, side, side] images", self.header.dims),
            }),
        }
    }

    fn check_labels(&self) -> Result<(), IdxError> {
        if self.header.dims.len() != 1 {
            return Err(IdxError::Format {
                path: self.path.clone(),
                reason: format!("dimensions {:?} are not [count] labels", self.header.dims),
            });
        }
        Ok(())
    }
}

/// Reads an idx file (see [`open`]: regular files only, `.gz` gunzipped,
/// sizes checked against the header before the data is read).
pub fn read(path: &Path) -> Result<IdxArray, IdxError> {
    open(path)?.read()
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
    let file = open(path)?;
    let side = file.image_side()?;
    Ok(Images { side, pixels: file.read()?.data })
}

/// Reads a rank-1 idx file of labels.
pub fn read_labels(path: &Path) -> Result<Vec<u8>, IdxError> {
    let file = open(path)?;
    file.check_labels()?;
    Ok(file.read()?.data)
}

/// Images from a gzipped idx3 file held in memory; `path` only names it in
/// errors.
pub fn parse_images_gz(bytes: &[u8], path: &Path) -> Result<Images, IdxError> {
    let mut input = flate2::read::GzDecoder::new(bytes);
    let header = Header::read(&mut input, path)?;
    let file = Opened { path: path.to_path_buf(), header, input: Box::new(input) };
    let side = file.image_side()?;
    Ok(Images { side, pixels: file.read()?.data })
}

/// Reads images and labels and checks they belong together: both headers
/// first, so that a count that disagrees is refused before any data is
/// read (or decompressed).
pub fn read_labelled(images: &Path, labels: &Path) -> Result<(Images, Vec<u8>), IdxError> {
    let (image_file, label_file) = (open(images)?, open(labels)?);
    let side = image_file.image_side()?;
    label_file.check_labels()?;
    let (image_count, label_count) = (image_file.header.dims[0], label_file.header.dims[0]);
    if image_count != label_count {
        return Err(IdxError::Mismatch {
            reason: format!(
                "{} holds {image_count} images but {} holds {label_count} labels",
                images.display(),
                labels.display(),
            ),
        });
    }
    Ok((Images { side, pixels: image_file.read()?.data }, label_file.read()?.data))
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
