//! A bounded map that forgets its least recently seen entry to make room: the shape of every
//! per-IP and per-MAC table of the engine.
//!
//! The entries live by value in one `Vec` (a slab), linked into recency order by 28-bit slab
//! positions, and a hash index of slab positions finds them. Compared with a map of boxed list
//! nodes this costs no allocation per entry and 7 bytes of links plus about 5 to 10 bytes of
//! index per entry, and both the slab and the index grow with use only, never to the cap up front. The
//! slab stays dense: removing an entry moves the last one into its place.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Bits of a slab position in [`Links`]: room for far more entries than any cap allows
/// (`config::Caps` stops at 2^24).
const POSITION_BITS: u32 = 28;
/// No entry (an end of the recency list).
const NIL: u32 = (1 << POSITION_BITS) - 1;

pub(super) struct LruTable<K, V> {
    slots: Vec<Slot<K, V>>,
    /// Slab positions, found by the hash of their key.
    index: HashTable<u32>,
    /// Least recently seen.
    oldest: u32,
    /// Most recently seen.
    newest: u32,
    cap: usize,
    /// Keyed per process, so that crafted keys cannot aim at collisions; nothing depends on the
    /// hash order (iteration follows the slab).
    hasher: foldhash::fast::RandomState,
}

struct Slot<K, V> {
    value: V,
    key: K,
    links: Links,
}

/// A slab position found by [`LruTable::position`].
#[derive(Clone, Copy)]
pub(super) struct Position(u32);

/// A slot's neighbours in recency order, two 28-bit slab positions in 7 bytes of alignment 1:
/// with a 17-byte `IpAddr` key and a 72-byte state, an IP's slot is 96 bytes, not 104.
#[derive(Clone, Copy)]
struct Links([u8; 7]);

impl Links {
    const MASK: u64 = NIL as u64;

    fn new(older: u32, newer: u32) -> Self {
        let packed = u64::from(older) | u64::from(newer) << POSITION_BITS;
        let mut bytes = [0; 7];
        bytes.copy_from_slice(&packed.to_le_bytes()[..7]);
        Links(bytes)
    }

    fn packed(self) -> u64 {
        let mut bytes = [0; 8];
        bytes[..7].copy_from_slice(&self.0);
        u64::from_le_bytes(bytes)
    }

    /// Towards the least recently seen.
    fn older(self) -> u32 {
        (self.packed() & Self::MASK) as u32
    }

    /// Towards the most recently seen.
    fn newer(self) -> u32 {
        (self.packed() >> POSITION_BITS & Self::MASK) as u32
    }

    fn set_older(&mut self, older: u32) {
        *self = Links::new(older, self.newer());
    }

    fn set_newer(&mut self, newer: u32) {
        *self = Links::new(self.older(), newer);
    }
}

impl<K: Hash + Eq, V> LruTable<K, V> {
    /// Room for `cap` entries (at least one, at most 2^28 - 2).
    pub fn new(cap: usize) -> Self {
        LruTable {
            slots: Vec::new(),
            index: HashTable::new(),
            oldest: NIL,
            newest: NIL,
            cap: cap.clamp(1, NIL as usize - 1),
            hasher: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The value of `key`, which does not become more recently seen.
    pub fn peek<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).map(|i| &self.slots[i as usize].value)
    }

    /// The value of `key`, which does not become more recently seen.
    pub fn peek_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).map(|i| &mut self.slots[i as usize].value)
    }

    /// The value of `key`, which becomes the most recently seen.
    pub fn get_mut<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key)?;
        self.make_newest(i);
        Some(&mut self.slots[i as usize].value)
    }

    /// Where `key`'s entry is, if it is there: for a caller that looks first and then reads the
    /// entry ([`LruTable::get_at`]) or does something else, with one lookup. Valid until the
    /// table next changes.
    pub fn position<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<Position>
    where
        K: Borrow<Q>,
    {
        self.find(key).map(Position)
    }

    /// The value at `at`, which becomes the most recently seen.
    pub fn get_at(&mut self, at: Position) -> &mut V {
        self.make_newest(at.0);
        &mut self.slots[at.0 as usize].value
    }

    /// The value of `key`, made with `make` if there is none, and the most recently seen either
    /// way; with the entry forgotten to make room, if one was.
    pub fn get_or_insert_with(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(K, V)>) {
        let hash = self.hasher.hash_one(&key);
        let (i, forgotten) = match self.find_hashed(hash, &key) {
            Some(i) => {
                self.make_newest(i);
                (i, None)
            }
            None => self.insert_new(hash, key, make()),
        };
        (&mut self.slots[i as usize].value, forgotten)
    }

    /// Adds `key` as the most recently seen with `make`'s value if it is absent (an entry that
    /// is present stays where it is). Returns the entry forgotten to make room, if one was.
    pub fn insert_absent(&mut self, key: K, make: impl FnOnce() -> V) -> Option<(K, V)> {
        let hash = self.hasher.hash_one(&key);
        if self.find_hashed(hash, &key).is_some() {
            return None;
        }
        self.insert_new(hash, key, make()).1
    }

    /// Sets the value of `key`, which becomes the most recently seen. Returns the entry this
    /// replaced or forgot to make room, if any.
    pub fn push(&mut self, key: K, value: V) -> Option<(K, V)> {
        let hash = self.hasher.hash_one(&key);
        match self.find_hashed(hash, &key) {
            Some(i) => {
                self.make_newest(i);
                let slot = &mut self.slots[i as usize];
                let old = std::mem::replace(&mut slot.value, value);
                Some((key, old))
            }
            None => self.insert_new(hash, key, value).1,
        }
    }

    /// Forgets `key`.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let found = self.index.find_entry(hash, |&i| slots[i as usize].key.borrow() == key).ok()?;
        let (i, _) = found.remove();
        self.unlink(i);
        // Keep the slab dense: the last slot moves into the hole.
        let last = (self.slots.len() - 1) as u32;
        if i != last {
            self.relocate(last, i);
        }
        self.slots.pop().map(|slot| slot.value)
    }

    /// Every entry, in no particular order, without making any more recently seen.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().map(|slot| (&slot.key, &slot.value))
    }

    fn find<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
    {
        self.find_hashed(self.hasher.hash_one(key), key)
    }

    fn find_hashed<Q: Hash + Eq + ?Sized>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
    {
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i as usize].key.borrow() == key).copied()
    }

    /// Adds an absent key as the most recently seen, in the slot of the least recently seen one
    /// when the table is full. Returns its slot and the entry forgotten.
    fn insert_new(&mut self, hash: u64, key: K, value: V) -> (u32, Option<(K, V)>) {
        let (i, forgotten) = if self.slots.len() < self.cap {
            let i = self.slots.len() as u32;
            self.slots.push(Slot { value, key, links: Links::new(NIL, NIL) });
            (i, None)
        } else {
            let i = self.oldest;
            let old_hash = self.hasher.hash_one(&self.slots[i as usize].key);
            if let Ok(found) = self.index.find_entry(old_hash, |&j| j == i) {
                found.remove();
            }
            self.unlink(i);
            let slot = &mut self.slots[i as usize];
            let old_key = std::mem::replace(&mut slot.key, key);
            let old_value = std::mem::replace(&mut slot.value, value);
            (i, Some((old_key, old_value)))
        };
        // After the slot holds its key: growing the index rehashes every slot it names.
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, i, |&j| hasher.hash_one(&slots[j as usize].key));
        self.link_newest(i);
        (i, forgotten)
    }

    fn make_newest(&mut self, i: u32) {
        if self.newest != i {
            self.unlink(i);
            self.link_newest(i);
        }
    }

    fn unlink(&mut self, i: u32) {
        let links = self.slots[i as usize].links;
        let (older, newer) = (links.older(), links.newer());
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o as usize].links.set_newer(newer),
        }
        match newer {
            NIL => self.newest = older,
            n => self.slots[n as usize].links.set_older(older),
        }
    }

    fn link_newest(&mut self, i: u32) {
        let newest = self.newest;
        let slot = &mut self.slots[i as usize];
        slot.links = Links::new(newest, NIL);
        match newest {
            NIL => self.oldest = i,
            n => self.slots[n as usize].links.set_newer(i),
        }
        self.newest = i;
    }

    /// Moves the slot at `from` to the free position `to`: its neighbours and its index entry
    /// follow. The slot left at `from` is the one to drop.
    fn relocate(&mut self, from: u32, to: u32) {
        self.slots.swap(from as usize, to as usize);
        let links = self.slots[to as usize].links;
        match links.older() {
            NIL => self.oldest = to,
            o => self.slots[o as usize].links.set_newer(to),
        }
        match links.newer() {
            NIL => self.newest = to,
            n => self.slots[n as usize].links.set_older(to),
        }
        let hash = self.hasher.hash_one(&self.slots[to as usize].key);
        if let Some(entry) = self.index.find_mut(hash, |&j| j == from) {
            *entry = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys from least to most recently seen, following the links.
    fn order(table: &LruTable<u32, u32>) -> Vec<u32> {
        let mut keys = Vec::new();
        let mut i = table.oldest;
        while i != NIL {
            keys.push(table.slots[i as usize].key);
            i = table.slots[i as usize].links.newer();
        }
        keys
    }

    #[test]
    fn forgets_the_least_recently_seen_to_make_room_and_only_then() {
        let mut table = LruTable::new(3);
        for k in 1..=3 {
            assert!(table.insert_absent(k, || k * 10).is_none());
        }
        // Seen again: 1 is now the most recently seen, 2 the least.
        assert_eq!(table.get_mut(&1).map(|v| *v), Some(10));
        assert_eq!(order(&table), [2, 3, 1]);
        let (value, forgotten) = table.get_or_insert_with(4, || 40);
        assert_eq!((*value, forgotten), (40, Some((2, 20))));
        assert_eq!(order(&table), [3, 1, 4]);
        assert_eq!(table.len(), 3);
        assert!(table.peek(&2).is_none());
        assert_eq!(table.peek(&4), Some(&40));
    }

    #[test]
    fn peeking_and_inserting_a_present_key_leave_it_where_it_is() {
        let mut table = LruTable::new(3);
        table.insert_absent(1, || 10);
        table.insert_absent(2, || 20);
        assert_eq!(table.peek(&1), Some(&10));
        *table.peek_mut(&1).unwrap() = 11;
        assert!(table.insert_absent(1, || 99).is_none());
        assert_eq!(order(&table), [1, 2]);
        assert_eq!(table.peek(&1), Some(&11));
        // `get_or_insert_with` of a present key keeps the value and makes it the newest.
        let (value, forgotten) = table.get_or_insert_with(1, || 99);
        assert_eq!((*value, forgotten), (11, None));
        assert_eq!(order(&table), [2, 1]);
        // Finding a position leaves the order; reading at it makes the key the newest.
        assert!(table.position(&3).is_none());
        let at = table.position(&2).unwrap();
        assert_eq!(order(&table), [2, 1]);
        assert_eq!(*table.get_at(at), 20);
        assert_eq!(order(&table), [1, 2]);
    }

    #[test]
    fn push_replaces_a_present_value_and_returns_the_old_one() {
        let mut table = LruTable::new(2);
        assert_eq!(table.push(1, 10), None);
        assert_eq!(table.push(2, 20), None);
        assert_eq!(table.push(1, 11), Some((1, 10)));
        assert_eq!(order(&table), [2, 1]);
        assert_eq!(table.push(3, 30), Some((2, 20)));
        assert_eq!(order(&table), [1, 3]);
    }

    #[test]
    fn removing_keeps_the_slab_dense_and_every_key_findable() {
        let mut table = LruTable::new(100);
        for k in 0..50 {
            table.insert_absent(k, || k);
        }
        for k in (0..50).step_by(3) {
            assert_eq!(table.remove(&k), Some(k));
        }
        assert_eq!(table.remove(&0), None);
        let kept: Vec<u32> = (0..50).filter(|k| k % 3 != 0).collect();
        assert_eq!(table.len(), kept.len());
        assert_eq!(order(&table), kept);
        for k in &kept {
            assert_eq!(table.peek(k), Some(k));
        }
        // The oldest left is forgotten first once the table fills up.
        let mut table = LruTable::new(2);
        table.insert_absent(1, || 1);
        table.insert_absent(2, || 2);
        table.remove(&1);
        table.insert_absent(3, || 3);
        assert_eq!(table.push(4, 4), Some((2, 2)));
        assert_eq!(order(&table), [3, 4]);
    }

    /// The sizes the memory budget of the engine is made of (issue 13: 1M tracked IPs, ARP and
    /// NDP alike, in at most 128 MiB): an IP's entry, with its one binding inline, its owner and
    /// its key, packs without padding. Any growth here is a bytes-per-IP regression.
    #[test]
    fn an_ip_entry_packs_into_96_bytes() {
        use super::super::state::{Binding, Bindings, IpState};
        use std::mem::size_of;
        assert_eq!(size_of::<Binding>(), 48);
        assert_eq!(size_of::<Bindings>(), 48, "the tag lives in a niche of the inline binding");
        assert_eq!(size_of::<IpState>(), 72);
        assert_eq!(size_of::<Slot<std::net::IpAddr, IpState>>(), 96);
    }

    #[test]
    fn looks_up_by_a_borrowed_key() {
        let mut table: LruTable<std::sync::Arc<str>, u32> = LruTable::new(2);
        table.insert_absent("eth0".into(), || 1);
        assert_eq!(table.peek("eth0"), Some(&1));
        assert_eq!(table.get_mut("eth0").map(|v| *v), Some(1));
        assert_eq!(table.remove("eth0"), Some(1));
        assert!(table.peek("eth0").is_none());
    }
}
