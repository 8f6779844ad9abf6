//! NPY v1.0 headers (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>):
//! the few lines it takes to describe a little-endian C-order array are written here rather
//! than pulled in with a crate (`npyz`, `ndarray-npy` bring generic element traits and, for the
//! latter, ndarray, for what is a fixed magic string and a Python dict literal). The data that
//! follows the header is the caller's: raw little-endian elements, C order.

/// An element type numpy reads without extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F16,
    F32,
}

impl Dtype {
    /// numpy's `descr`: byte order and type code.
    fn descr(self) -> &'static str {
        match self {
            Dtype::F16 => "<f2",
            Dtype::F32 => "<f4",
        }
    }

    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 => 4,
        }
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// numpy pads the header so the data starts on a multiple of 64 bytes (the format asks for
/// 16; 64 keeps memory-mapped arrays aligned for any dtype).
const ALIGN: usize = 64;

/// The header of an array of `dtype` and `shape`; the data (`shape`'s product elements) follows.
pub fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}",
        dtype.descr()
    );
    // magic (6) + version (2) + header length (2) + dict + padding + '\n'.
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.extend(std::iter::repeat_n(
        ' ',
        unpadded.next_multiple_of(ALIGN) - unpadded,
    ));
    dict.push('\n');
    let len = u16::try_from(dict.len()).expect("an NPY header of a few dimensions fits in u16");
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// A whole 1-D float32 array (a clip's embedding).
pub fn f32_vector(values: &[f32]) -> Vec<u8> {
    let mut out = header(Dtype::F32, &[values.len()]);
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What numpy 2.2.6's `np.save` writes before the data.
    fn numpys(dict: &str) -> Vec<u8> {
        let mut text = dict.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((text.len() as u16).to_le_bytes());
        out.extend(text.as_bytes());
        out
    }

    #[test]
    fn header_is_numpys() {
        // Byte for byte what np.save gave for np.zeros(3, '<f4') and np.zeros((2, 4, 8, 8), '<f2')
        // (128 bytes each).
        let h = header(Dtype::F32, &[3]);
        assert_eq!(h.len(), 128);
        assert_eq!(
            h,
            numpys("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }")
        );
        assert_eq!(
            header(Dtype::F16, &[2, 4, 8, 8]),
            numpys("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 4, 8, 8), }")
        );
    }

    #[test]
    fn vector_holds_the_values() {
        let bytes = f32_vector(&[1.0, -2.5]);
        assert_eq!(bytes.len(), 128 + 8);
        assert_eq!(&bytes[128..132], &1.0f32.to_le_bytes());
    }
}
