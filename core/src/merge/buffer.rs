//! Float32 buffers that are either views into a memory-mapped file or owned copies, and the
//! byte reinterpretation helpers the file formats need (little-endian hosts only, like
//! safetensors and NumPy's `<f4`).

use memmap2::Mmap;
use std::sync::Arc;

/// A read-only float32 array: a zero-copy view into a shared memory map when the bytes are
/// 4-byte aligned, otherwise an owned copy.
#[derive(Debug, Clone)]
pub enum F32Data {
    /// `len` floats starting at byte `offset` of the map.
    Mapped {
        /// The shared map.
        map: Arc<Mmap>,
        /// Byte offset of the first float.
        offset: usize,
        /// Number of floats.
        len: usize,
    },
    /// An owned copy.
    Owned(Arc<[f32]>),
}

impl F32Data {
    /// Wraps `len` floats at byte `offset` of `map`, copying only when misaligned.
    pub fn from_map(map: &Arc<Mmap>, offset: usize, len: usize) -> Self {
        let bytes = &map[offset..offset + len * 4];
        // SAFETY: f32 has no invalid bit patterns; align_to only yields a middle slice of
        // correctly aligned, fully covered elements.
        let (pre, mid, _) = unsafe { bytes.align_to::<f32>() };
        if pre.is_empty() && mid.len() == len {
            F32Data::Mapped {
                map: map.clone(),
                offset,
                len,
            }
        } else {
            F32Data::Owned(bytes_to_f32_vec(bytes).into())
        }
    }

    /// The floats.
    pub fn as_slice(&self) -> &[f32] {
        match self {
            F32Data::Mapped { map, offset, len } => {
                let bytes = &map[*offset..*offset + *len * 4];
                // SAFETY: alignment and length were checked in `from_map`; the map is
                // read-only and lives as long as `self`.
                let (_, mid, _) = unsafe { bytes.align_to::<f32>() };
                mid
            }
            F32Data::Owned(v) => v,
        }
    }

    /// Number of floats.
    pub fn len(&self) -> usize {
        match self {
            F32Data::Mapped { len, .. } => *len,
            F32Data::Owned(v) => v.len(),
        }
    }

    /// Tells the kernel this process no longer needs the mapped pages of elements
    /// `start..start + len` (they stay in the page cache; a later access faults them back in),
    /// so streaming over large inputs does not accumulate resident memory. No-op for owned data.
    pub fn release(&self, start: usize, len: usize) {
        if let F32Data::Mapped { map, offset, .. } = self {
            release_map(map, offset + start * 4, len * 4);
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reinterprets floats as their little-endian bytes (no copy).
pub fn f32_as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte of an f32 is initialised.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// Reinterprets a mutable byte slice as floats when it is 4-byte aligned and a whole number of
/// floats long.
pub fn bytes_as_f32_mut(b: &mut [u8]) -> Option<&mut [f32]> {
    let n = b.len();
    // SAFETY: every bit pattern is a valid f32.
    let (pre, mid, post) = unsafe { b.align_to_mut::<f32>() };
    (pre.is_empty() && post.is_empty() && mid.len() * 4 == n).then_some(mid)
}

/// Copies little-endian bytes into a new float vector.
pub fn bytes_to_f32_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `madvise(DONTNEED)` on a byte range of a read-only file map (see [`F32Data::release`]).
pub fn release_map(map: &Mmap, start: usize, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the map is a read-only shared file mapping: dropping its pages loses nothing, a
    // later read faults the same file contents back in.
    let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len) };
}
