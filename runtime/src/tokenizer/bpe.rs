//! The merge loop shared by byte-level BPE and SentencePiece-style BPE: symbols in a linked
//! list, candidate merges in a min-heap ordered by (rank, position), as Hugging Face
//! tokenizers' `Word::merge_all` and llama.cpp's SPM tokenizer do. O(n log n) in the symbols.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

use ember_format::BytesArray;

use super::token_type;

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
}

/// Which adjacent symbols merge, into what, in which order.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Merges<'a> {
    /// `tokenizer.merges`: `(left, right, rank, result)` quadruples sorted by `(left, right)`.
    Table(&'a [u32]),
    /// SentencePiece's rule (`spm-vocab`): two normal tokens merge when their concatenation
    /// is a normal token, whose `tokenizer.merge_ranks` entry is the rank. One u32 per token
    /// instead of 16 bytes per split (Gemma 3: 1 MB instead of 8.2 MB).
    Vocab(VocabMerges<'a>),
}

/// The tables [`Merges::Vocab`] reads; the loader checked their lengths and ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VocabMerges<'a> {
    pub(crate) tokens: BytesArray<'a>,
    pub(crate) types: &'a [u8],
    /// Ids sorted by bytes (`tokenizer.token_index`).
    pub(crate) index: &'a [u32],
    /// Per token: its rank as a merge result, `NONE` if it is none.
    pub(crate) ranks: &'a [u32],
}

/// `t` against the concatenation `a ‖ b`, bytewise, without building it.
fn cmp_concat(t: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    let n = t.len().min(a.len());
    match t[..n].cmp(&a[..n]) {
        Ordering::Equal if t.len() <= a.len() => t.len().cmp(&(a.len() + b.len())),
        Ordering::Equal => t[n..].cmp(b),
        o => o,
    }
}

impl VocabMerges<'_> {
    fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let normal = |id: u32| self.types.get(id as usize) == Some(&token_type::NORMAL);
        if !normal(left) || !normal(right) {
            return None;
        }
        let (a, b) = (
            self.tokens.get(left as usize)?,
            self.tokens.get(right as usize)?,
        );
        let tokens = self.tokens;
        let i = self
            .index
            .binary_search_by(|&id| cmp_concat(tokens.get(id as usize).unwrap_or(&[]), a, b))
            .ok()?;
        let result = self.index[i];
        let rank = *self.ranks.get(result as usize)?;
        (normal(result) && rank != NONE).then_some((rank, result))
    }
}

impl Merges<'_> {
    /// `(rank, result)` of merging `left` then `right`.
    pub(crate) fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let t = match self {
            Merges::Table(t) => t,
            Merges::Vocab(v) => return v.get(left, right),
        };
        let (mut lo, mut hi) = (0usize, t.len() / 4);
        let key = (left, right);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = &t[mid * 4..mid * 4 + 4];
            match (e[0], e[1]).cmp(&key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some((e[2], e[3])),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_concat_orders_as_the_concatenation() {
        let words: [&[u8]; 8] = [b"", b"a", b"ab", b"abc", b"b", b"ba", b"\xff", b"a\xff"];
        for t in words {
            for a in words {
                for b in words {
                    let ab = [a, b].concat();
                    assert_eq!(cmp_concat(t, a, b), t.cmp(&ab[..]), "{t:?} {a:?} {b:?}");
                }
            }
        }
    }
}
