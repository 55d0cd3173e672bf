//! What scratch buffers are made of: vectors on the heap
//! ([`Workspace::new`](crate::Workspace::new)) or slices cut from caller
//! memory ([`WorkspaceIn::in_memory`](crate::WorkspaceIn::in_memory)), behind
//! one type so that the forward passes need not care which.

use core::ops::{Deref, DerefMut};

#[cfg(feature = "alloc")]
use alloc::{vec, vec::Vec};

/// One scratch buffer of `T`s; reads and writes as a slice.
#[derive(Debug)]
pub(crate) enum Buf<'m, T> {
    #[cfg(feature = "alloc")]
    Heap(Vec<T>),
    Mem(&'m mut [T]),
}

impl<T> Deref for Buf<'_, T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match self {
            #[cfg(feature = "alloc")]
            Buf::Heap(v) => v,
            Buf::Mem(s) => s,
        }
    }
}

impl<T> DerefMut for Buf<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            #[cfg(feature = "alloc")]
            Buf::Heap(v) => v,
            Buf::Mem(s) => s,
        }
    }
}

/// A clone owns its buffer: caller memory cannot be lent twice.
#[cfg(feature = "alloc")]
impl<T: Clone> Clone for Buf<'_, T> {
    fn clone(&self) -> Self {
        Buf::Heap(self.to_vec())
    }
}

/// Where a scratch type gets its buffers; each scratch type lists its
/// buffers once, in a `new(shape, source)`.
pub(crate) trait Source<'m> {
    /// A zeroed buffer of `len` values.
    fn take<T: bytemuck::Pod>(&mut self, len: usize) -> Buf<'m, T>;
}

/// Buffers from the heap.
#[cfg(feature = "alloc")]
pub(crate) struct Heap;

#[cfg(feature = "alloc")]
impl Source<'static> for Heap {
    fn take<T: bytemuck::Pod>(&mut self, len: usize) -> Buf<'static, T> {
        Buf::Heap(vec![T::zeroed(); len])
    }
}

/// Buffers cut front to back from caller memory, each on a whole number
/// of u32 words (so any element of up to 4 bytes is aligned). Counts the
/// words asked for; once the memory runs short it hands out empty buffers,
/// and [`Arena::needed`] tells the caller the memory was too small.
pub(crate) struct Arena<'m> {
    rest: &'m mut [u32],
    needed: usize,
    short: bool,
}

impl<'m> Arena<'m> {
    pub(crate) fn new(mem: &'m mut [u32]) -> Arena<'m> {
        Arena { rest: mem, needed: 0, short: false }
    }

    /// Words asked for so far; more than the memory had if it ran short.
    pub(crate) fn needed(&self) -> usize {
        self.needed
    }
}

impl<'m> Source<'m> for Arena<'m> {
    fn take<T: bytemuck::Pod>(&mut self, len: usize) -> Buf<'m, T> {
        const { assert!(align_of::<T>() <= 4 && 4 % size_of::<T>() == 0) };
        let words = (len * size_of::<T>()).div_ceil(4);
        self.needed += words;
        self.short |= words > self.rest.len();
        if self.short {
            return Buf::Mem(&mut []);
        }
        let (head, rest) = core::mem::take(&mut self.rest).split_at_mut(words);
        self.rest = rest;
        head.fill(0);
        Buf::Mem(&mut bytemuck::cast_slice_mut(head)[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_cuts_word_aligned_zeroed_buffers_and_counts_what_it_lacks() {
        let mut mem = [7u32; 4];
        let mut arena = Arena::new(&mut mem);
        let a: Buf<'_, i16> = arena.take(3); // two words
        let b: Buf<'_, f32> = arena.take(2);
        assert_eq!((&*a, &*b), (&[0i16; 3][..], &[0.0f32; 2][..]));
        assert_eq!(b.as_ptr() as usize % 4, 0);
        let c: Buf<'_, i32> = arena.take(1); // nothing left
        let d: Buf<'_, i16> = arena.take(0);
        assert!(c.is_empty() && d.is_empty());
        assert_eq!(arena.needed(), 5);
    }
}
