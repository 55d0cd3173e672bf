//! NumPy `.npy` files of little-endian f32 (`<f4`), C order: what
//! `np.save` writes for a float32 array, and what `eval --logits-out` writes.

use std::fmt;

/// An f32 array with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a usable .npy file: {}", self.0)
    }
}

impl std::error::Error for NpyError {}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes an f32 array as a version 1.0 `.npy` file.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape does not match data");
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_str = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_str}, }}");
    // Pad with spaces so the data starts on a 64-byte boundary, newline last.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 4 * data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a `.npy` file holding a C-order `<f4` array.
pub fn decode_f32(bytes: &[u8]) -> Result<NpyF32, NpyError> {
    let fail = |m: &str| Err(NpyError(m.to_string()));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return fail("missing the \\x93NUMPY magic");
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(NpyError(format!("unsupported version {v}"))),
    };
    let Some(header) = bytes.get(start..start + header_len) else {
        return fail("header runs past the end of the file");
    };
    let header = std::str::from_utf8(header).map_err(|_| NpyError("header is not UTF-8".into()))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    match field("descr") {
        Some(d) if d.starts_with("'<f4'") => {}
        _ => return fail("dtype is not little-endian float32 ('<f4')"),
    }
    if !field("fortran_order").is_some_and(|f| f.starts_with("False")) {
        return fail("array is not in C order");
    }
    let shape_str = field("shape").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split(')').next());
    let Some(shape_str) = shape_str else {
        return fail("no shape in the header");
    };
    let shape = shape_str
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| NpyError(format!("bad dimension {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[start + header_len..];
    let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count.and_then(|c| c.checked_mul(4)) != Some(data.len()) {
        return Err(NpyError(format!("shape {shape:?} does not match {} data bytes", data.len())));
    }
    let data = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyF32 { shape, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        for shape in [vec![12], vec![3, 4], vec![2, 3, 2]] {
            let bytes = encode_f32(&shape, &data);
            assert_eq!((bytes.len() - 4 * data.len()) % 64, 0, "data is 64-byte aligned");
            assert_eq!(decode_f32(&bytes).unwrap(), NpyF32 { shape, data: data.clone() });
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let good = encode_f32(&[2, 2], &[1.0; 4]);
        assert!(decode_f32(b"hello").unwrap_err().0.contains("magic"));
        assert!(decode_f32(&good[..good.len() - 1]).unwrap_err().0.contains("does not match 15 data bytes"));
        let mut f8 = good.clone();
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(decode_f32(&f8).unwrap_err().0.contains("float32"));
        let mut fortran = good.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(decode_f32(&fortran).unwrap_err().0.contains("C order"));
    }
}
