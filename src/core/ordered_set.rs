//! An ordered set of small `Copy` items, for the engine's indexes.
//!
//! Not `std::collections::BTreeSet`: the engine needs only insert, remove, the first
//! item and a scan from a lower bound, and std's B-tree brings a large amount of generic code to the
//! wasm module for every item type. Here the items sit in sorted blocks of at most
//! [`BLOCK`]: a binary search over the blocks' last items finds the block, a second one
//! the place in it, and an insert or removal moves at most one block's items. The common
//! cases, adding after the last item and removing the first, stay cheap.

use alloc::vec;
use alloc::vec::Vec;

/// The most items in one block: small enough that shifting a block is quick, large
/// enough that the list of blocks stays short.
const BLOCK: usize = 128;

/// A set of items in ascending order. See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct OrderedSet<T> {
    /// Sorted, none empty, each block's items all below the next block's.
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for OrderedSet<T> {
    fn default() -> Self {
        OrderedSet {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord + Copy> OrderedSet<T> {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The index of the first block whose last item is not below `item`: the block that
    /// holds `item`, if any does. `blocks.len()` when `item` is above every item.
    fn block_at_or_after(&self, item: &T) -> usize {
        self.blocks
            .partition_point(|block| block[block.len() - 1] < *item)
    }

    /// Adds `item`; false if it was there already.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        // Above every item, it goes into the last block (there is no later one).
        let blocks = self.blocks.len();
        let b = self.block_at_or_after(&item).min(blocks.saturating_sub(1));
        let Some(block) = self.blocks.get_mut(b) else {
            self.blocks.push(vec![item]);
            self.len = 1;
            return true;
        };
        let Err(at) = block.binary_search(&item) else {
            return false;
        };
        self.len += 1;
        if block.len() < BLOCK {
            block.insert(at, item);
        } else if at == BLOCK && b + 1 == blocks {
            // Appending (as every new message does): a new block, the full one stays full.
            self.blocks.push(vec![item]);
        } else if at == 0 && b == 0 {
            // In front of everything (a due time earlier than all others): likewise.
            self.blocks.insert(0, vec![item]);
        } else {
            let mut tail = block.split_off(BLOCK / 2);
            if at <= BLOCK / 2 {
                block.insert(at, item);
            } else {
                tail.insert(at - BLOCK / 2, item);
            }
            self.blocks.insert(b + 1, tail);
        }
        true
    }

    /// Removes `item`; false if it was not there.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        let b = self.block_at_or_after(item);
        let Some(block) = self.blocks.get_mut(b) else {
            return false;
        };
        let Ok(at) = block.binary_search(item) else {
            return false;
        };
        block.remove(at);
        self.len -= 1;
        if block.is_empty() {
            self.blocks.remove(b);
        } else if block.len() < BLOCK / 4 {
            // A thin block joins a neighbour with room, so that scattered removals do
            // not leave a long list of nearly empty blocks.
            let thin = block.len();
            let fits = |i: usize| self.blocks.get(i).is_some_and(|n| n.len() + thin <= BLOCK);
            let left = if b > 0 && fits(b - 1) {
                Some(b - 1)
            } else if fits(b + 1) {
                Some(b)
            } else {
                None
            };
            if let Some(left) = left {
                let mut right = self.blocks.remove(left + 1);
                self.blocks[left].append(&mut right);
            }
        }
        true
    }

    /// The smallest item.
    pub(crate) fn first(&self) -> Option<&T> {
        self.blocks.first().map(|block| &block[0])
    }

    /// The items not below `from`, in ascending order.
    pub(crate) fn range_from(&self, from: &T) -> Iter<'_, T> {
        let b = self.block_at_or_after(from);
        let blocks = &self.blocks[b..];
        let at = blocks
            .first()
            .map_or(0, |block| block.partition_point(|x| x < from));
        Iter { blocks, at }
    }

    /// Every item, in ascending order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter {
            blocks: &self.blocks,
            at: 0,
        }
    }

    /// How many items the set holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every item.
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }
}

impl<'a, T: Ord + Copy> IntoIterator for &'a OrderedSet<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// Items of an [`OrderedSet`] in ascending order, from [`OrderedSet::iter`] or
/// [`OrderedSet::range_from`].
pub(crate) struct Iter<'a, T> {
    /// The blocks not yet finished, the first one from `at`.
    blocks: &'a [Vec<T>],
    at: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            let (block, rest) = self.blocks.split_first()?;
            if let Some(item) = block.get(self.at) {
                self.at += 1;
                return Some(item);
            }
            self.blocks = rest;
            self.at = 0;
        }
    }
}

// proptest is a native-only dev-dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Range(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u16>().prop_map(|x| Op::Insert(x % 2000)),
            2 => any::<u16>().prop_map(|x| Op::Remove(x % 2000)),
            1 => any::<u16>().prop_map(|x| Op::Range(x % 2000)),
        ]
    }

    /// The blocks keep their promises: sorted within and across, none empty, none
    /// over `BLOCK`, and `len` counts them.
    fn check_shape(set: &OrderedSet<u16>) {
        let mut previous = None;
        let mut count = 0;
        for block in &set.blocks {
            assert!(
                !block.is_empty() && block.len() <= BLOCK,
                "block of {}",
                block.len()
            );
            for &x in block {
                assert!(previous < Some(x), "out of order at {x}");
                previous = Some(x);
                count += 1;
            }
        }
        assert_eq!(count, set.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any sequence of inserts, removals and scans answers as std's `BTreeSet` does.
        #[test]
        fn behaves_like_btreeset(ops in proptest::collection::vec(op(), 0..3000)) {
            let mut set = OrderedSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(set.insert(x), model.insert(x)),
                    Op::Remove(x) => prop_assert_eq!(set.remove(&x), model.remove(&x)),
                    Op::Range(x) => {
                        let got: Vec<u16> = set.range_from(&x).take(5).copied().collect();
                        let want: Vec<u16> = model.range(x..).take(5).copied().collect();
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(set.first(), model.first());
            }
            check_shape(&set);
            prop_assert_eq!(set.iter().copied().collect::<Vec<_>>(), model.into_iter().collect::<Vec<_>>());
        }
    }

    /// Filling in order from either end keeps the blocks full, and draining from the
    /// front (as delivery does) empties the set.
    #[test]
    fn ascending_and_descending_fills_keep_blocks_full() {
        let mut up = OrderedSet::new();
        let mut down = OrderedSet::new();
        for x in 0..10_000u16 {
            assert!(up.insert(x));
            assert!(down.insert(9_999 - x));
        }
        check_shape(&up);
        check_shape(&down);
        assert_eq!(up.blocks.len(), 10_000usize.div_ceil(BLOCK));
        assert_eq!(down.blocks.len(), 10_000usize.div_ceil(BLOCK));
        assert_eq!(
            up.iter().copied().collect::<Vec<_>>(),
            down.iter().copied().collect::<Vec<_>>()
        );
        for x in 0..10_000u16 {
            assert_eq!(up.first(), Some(&x));
            assert!(up.remove(&x));
        }
        assert_eq!((up.len(), up.first()), (0, None));
        assert!(up.blocks.is_empty());
    }

    #[test]
    fn scattered_removals_merge_thin_blocks() {
        let mut set = OrderedSet::new();
        for x in 0..4096u16 {
            set.insert(x);
        }
        for x in (0..4096u16).filter(|x| x % 8 != 0) {
            set.remove(&x);
        }
        check_shape(&set);
        assert_eq!(set.len(), 512);
        assert!(
            set.blocks.len() <= 512 / (BLOCK / 4) + 1,
            "{} blocks",
            set.blocks.len()
        );
    }
}
