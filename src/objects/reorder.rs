//! Frames back in order. When several detect workers serve one camera, their results reach the
//! objects stage in the order the workers finish, not the order of the frames. Every frame
//! carries its ticket (numbered as a worker took it) and every ticket arrives, detected or
//! skipped, so the stage holds a frame until those before it have come, and never longer. Pure.

use std::collections::BTreeMap;

/// Items numbered 0, 1, 2, … from any order back into that order.
#[derive(Debug)]
pub struct Reorder<T> {
    next: u64,
    held: BTreeMap<u64, T>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Reorder<T> {
        Reorder { next: 0, held: BTreeMap::new() }
    }
}

impl<T> Reorder<T> {
    /// Take the item numbered `ticket`; `out` gets every item now in order, oldest first. A
    /// ticket already passed (a duplicate) is handed back as `Err`.
    pub fn push(&mut self, ticket: u64, item: T, out: &mut Vec<T>) -> Result<(), T> {
        if ticket < self.next || self.held.contains_key(&ticket) {
            return Err(item);
        }
        self.held.insert(ticket, item);
        while let Some(item) = self.held.remove(&self.next) {
            out.push(item);
            self.next += 1;
        }
        Ok(())
    }

    /// Items waiting for an earlier one.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(order: &[u64]) -> (Vec<u64>, Vec<usize>) {
        let mut r = Reorder::default();
        let (mut out, mut held) = (Vec::new(), Vec::new());
        for &t in order {
            r.push(t, t, &mut out).unwrap();
            held.push(r.held());
        }
        (out, held)
    }

    #[test]
    fn in_order_passes_straight_through() {
        assert_eq!(feed(&[0, 1, 2, 3]), (vec![0, 1, 2, 3], vec![0, 0, 0, 0]));
    }

    #[test]
    fn two_workers_out_of_step_come_back_in_order() {
        // Worker B finishes 1 and 3 before worker A finishes 0, then 2.
        assert_eq!(feed(&[1, 3, 0, 2, 4]), (vec![0, 1, 2, 3, 4], vec![1, 2, 1, 0, 0]));
    }

    #[test]
    fn a_duplicate_is_handed_back_and_changes_nothing() {
        let mut r = Reorder::default();
        let mut out = Vec::new();
        r.push(0, "a", &mut out).unwrap();
        r.push(2, "c", &mut out).unwrap();
        assert_eq!(r.push(0, "again", &mut out), Err("again"));
        assert_eq!(r.push(2, "again", &mut out), Err("again"));
        r.push(1, "b", &mut out).unwrap();
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(r.held(), 0);
    }
}
