//! The merge loop shared by byte-level BPE and SentencePiece-style BPE: symbols in a linked
//! list, candidate merges in a min-heap ordered by (rank, position), as Hugging Face
//! tokenizers' `Word::merge_all` and llama.cpp's SPM tokenizer do. O(n log n) in the symbols.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Reverse;

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
}

/// The merge table: `(left, right, rank, result)` quadruples sorted by `(left, right)`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Merges<'a>(pub(crate) &'a [u32]);

impl Merges<'_> {
    /// `(rank, result)` of merging `left` then `right`, by binary search.
    pub(crate) fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let t = self.0;
        let (mut lo, mut hi) = (0usize, t.len() / 4);
        let key = (left, right);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = &t[mid * 4..mid * 4 + 4];
            match (e[0], e[1]).cmp(&key) {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Some((e[2], e[3])),
            }
        }
        None
    }
}

/// Reusable buffers for one `encode` call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    // Reverse(rank << 32 | position of the left symbol): the smallest rank pops first, ties
    // go to the leftmost pair. Eight bytes an entry keeps the heap small; a popped entry is
    // checked against the table again, since either side may have merged since.
    heap: BinaryHeap<Reverse<u64>>,
}

impl Scratch {
    pub(crate) fn clear(&mut self) {
        self.symbols.clear();
        self.heap.clear();
    }

    pub(crate) fn push(&mut self, id: u32) {
        let n = self.symbols.len() as u32;
        self.symbols.push(Symbol {
            id,
            prev: n.wrapping_sub(1),
            next: n + 1,
        });
    }

    /// Applies merges until none applies, then appends the resulting ids to `out`.
    pub(crate) fn merge_into(&mut self, merges: Merges<'_>, out: &mut Vec<u32>) {
        let n = self.symbols.len();
        if n == 0 {
            return;
        }
        self.symbols[0].prev = NONE;
        self.symbols[n - 1].next = NONE;
        for i in 0..n.saturating_sub(1) {
            self.try_add(merges, i as u32);
        }
        while let Some(Reverse(key)) = self.heap.pop() {
            let (rank, pos) = ((key >> 32) as u32, key as u32);
            let left = self.symbols[pos as usize];
            if left.id == NONE || left.next == NONE {
                continue;
            }
            let right = self.symbols[left.next as usize];
            let result = match merges.get(left.id, right.id) {
                Some((r, result)) if r == rank => result,
                _ => continue,
            };
            self.symbols[pos as usize].id = result;
            self.symbols[pos as usize].next = right.next;
            self.symbols[left.next as usize].id = NONE;
            if right.next != NONE {
                self.symbols[right.next as usize].prev = pos;
            }
            if left.prev != NONE {
                self.try_add(merges, left.prev);
            }
            self.try_add(merges, pos);
        }
        let mut i = 0u32;
        while i != NONE {
            let s = self.symbols[i as usize];
            out.push(s.id);
            i = s.next;
        }
    }

    fn try_add(&mut self, merges: Merges<'_>, pos: u32) {
        let left = self.symbols[pos as usize];
        if left.next == NONE {
            return;
        }
        let right = self.symbols[left.next as usize];
        if let Some((rank, _)) = merges.get(left.id, right.id) {
            self.heap
                .push(Reverse(u64::from(rank) << 32 | u64::from(pos)));
        }
    }
}
