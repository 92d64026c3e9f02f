//! A first-in, first-out queue for the engine's events.
//!
//! Not `VecDeque`: its ring-buffer code is a sizeable part of a small wasm module, and
//! the engine's queue is filled by one call and emptied by the driver soon after. Items
//! are pushed at the back of a `Vec` and taken from a read position; the `Vec` is
//! cleared whenever the reader catches up.

use alloc::vec::Vec;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Fifo<T> {
    /// Taken items are `None`; `head` is the first one not yet taken.
    items: Vec<Option<T>>,
    head: usize,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo {
            items: Vec::new(),
            head: 0,
        }
    }
}

impl<T> Fifo<T> {
    /// Adds `item` at the back.
    pub(crate) fn push(&mut self, item: T) {
        self.items.push(Some(item));
    }

    /// Takes the item at the front.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let item = self.items.get_mut(self.head)?.take();
        self.head += 1;
        if self.head == self.items.len() {
            self.items.clear();
            self.head = 0;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_in_the_order_they_went_in_across_refills() {
        let mut q = Fifo::default();
        assert_eq!(q.pop(), None::<u32>);
        let mut next_in = 0;
        let mut next_out = 0;
        // Uneven pushes and pops, emptying now and then.
        for round in 0..50u32 {
            for _ in 0..round % 7 {
                q.push(next_in);
                next_in += 1;
            }
            for _ in 0..round % 5 {
                if let Some(x) = q.pop() {
                    assert_eq!(x, next_out);
                    next_out += 1;
                }
            }
        }
        while let Some(x) = q.pop() {
            assert_eq!(x, next_out);
            next_out += 1;
        }
        assert_eq!(next_out, next_in);
        assert!(q.items.is_empty(), "emptied queues reuse their room");
    }
}
