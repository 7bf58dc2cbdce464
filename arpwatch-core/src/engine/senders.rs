//! The MACs the engine follows as senders (as Ethernet source for the per-MAC storm rate, as ARP
//! sender for the IPs a MAC answered for and for sender mismatches), with a table of first
//! sightings in front of them.
//!
//! A MAC gets a tracked entry on its second frame. Its first one only writes a sighting into a
//! direct-mapped table (one slot per hash of the MAC, which a later MAC of the same slot takes
//! over): in a spoofing flood every frame has a new MAC, and making an entry in the bounded
//! table for each, only to forget it again some 65 000 frames later unread, cost a fifth of the
//! engine's time there (cache misses in the table's index and an allocation per reply). A MAC
//! that keeps sending finds its sighting again unless another new MAC landed on its slot
//! meanwhile (after k other new MACs it is still there with probability e^(-k/slots)), or
//! leaves a new one for its next frame; what its first frame counted (one frame sent at its
//! time, as Ethernet source; the IP it answered for, as ARP sender) goes into the entry it then
//! gets, so rates and the IPs answered for come out as if it had been tracked from its first
//! frame. A lost sighting loses that one frame's count, or the first IP answered for (a proxy
//! is then recognised at its fifth IP instead of its fourth). A frame that carries repeats the
//! kernel folded into it, a second IP answered for, or a sender mismatch (whose throttle is
//! per sender) makes the entry at once.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::state::SenderState;
use super::table::LruTable;
use crate::observation::{MacAddr, Timestamp};

/// The most slots of the table of first sightings, allocated whole when the engine is made
/// (2.5 MiB at the default `max_tracked_senders`, the one thing the engine reserves up front).
const MAX_SIGHTINGS: usize = 1 << 16;

pub(super) struct Senders {
    tracked: LruTable<MacAddr, SenderState>,
    /// A power of two long, indexed by the MAC's hash.
    sightings: Box<[Sighting]>,
    /// Keyed per process, so that crafted MACs cannot aim at another MAC's slot.
    hasher: foldhash::fast::RandomState,
    /// The tracked senders that answered for many IPs (proxy ARP), kept apart so that checking a
    /// request's owner (every other frame of a spoofing flood) looks in this small set rather
    /// than among all the senders.
    proxies: HashSet<MacAddr, foldhash::fast::RandomState>,
    /// Tracked senders forgotten to make room.
    pub evicted: u64,
}

/// A MAC's first frame, as long as no other MAC has taken its slot.
#[derive(Clone, Copy, Default)]
struct Sighting {
    mac: Option<MacAddr>,
    /// The MAC sent the frame (was its Ethernet source), at `at`: a frame of its rate. A MAC
    /// seen only as the ARP sender of another source's frame has sent nothing yet.
    sent: bool,
    at: Timestamp,
    /// The IP it answered for, as the ARP sender of a plain reply.
    answered: Option<IpAddr>,
}

const _: () = assert!(std::mem::size_of::<Sighting>() == 40);

impl Senders {
    /// Room for `cap` tracked senders.
    pub fn new(cap: usize) -> Senders {
        let slots = cap.clamp(1, MAX_SIGHTINGS).next_power_of_two();
        Senders {
            tracked: LruTable::new(cap),
            sightings: vec![Sighting::default(); slots].into_boxed_slice(),
            hasher: Default::default(),
            proxies: HashSet::default(),
            evicted: 0,
        }
    }

    /// Tracked senders.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// Whether `mac` is a tracked sender that answered for many IPs.
    pub fn is_proxy(&self, mac: MacAddr) -> bool {
        !self.proxies.is_empty() && self.proxies.contains(&mac)
    }

    /// A frame from Ethernet source `mac` at `ts`, standing for `frames` frames: the MAC's state
    /// if it is tracked (now, if its first frame was seen before), `None` for a first frame.
    pub fn frame_from(
        &mut self,
        mac: MacAddr,
        ts: Timestamp,
        frames: u64,
    ) -> Option<&mut SenderState> {
        if let Some(at) = self.tracked.position(&mac) {
            return Some(self.tracked.get_at(at));
        }
        let slot = self.slot(mac);
        if self.sightings[slot].mac != Some(mac) && frames <= 1 {
            self.sightings[slot] = Sighting { mac: Some(mac), sent: true, at: ts, answered: None };
            return None;
        }
        Some(self.promote(mac, slot))
    }

    /// A plain reply whose ARP sender is `mac`, for `ip`, at `ts`; a MAC that has now answered
    /// for many IPs is a proxy from now on.
    pub fn answered(&mut self, mac: MacAddr, ip: IpAddr, ts: Timestamp) {
        let state = match self.tracked.position(&mac) {
            Some(at) => self.tracked.get_at(at),
            None => {
                let slot = self.slot(mac);
                let sighting = &mut self.sightings[slot];
                match sighting.answered {
                    _ if sighting.mac != Some(mac) => {
                        *sighting =
                            Sighting { mac: Some(mac), sent: false, at: ts, answered: Some(ip) };
                        return;
                    }
                    None => {
                        sighting.answered = Some(ip);
                        return;
                    }
                    Some(first) if first == ip => return,
                    // A second IP: from now on it is tracked.
                    Some(_) => self.promote(mac, slot),
                }
            }
        };
        let answered = &mut state.rare_mut().answered;
        answered.note(ip);
        if answered.many() {
            self.proxies.insert(mac);
        }
    }

    /// The state of `mac`, tracked from now on if it was not.
    pub fn track(&mut self, mac: MacAddr) -> &mut SenderState {
        match self.tracked.position(&mac) {
            Some(at) => self.tracked.get_at(at),
            None => self.promote(mac, self.slot(mac)),
        }
    }

    /// Makes the entry of `mac`, which is not tracked, with what its sighting in `slot` (if the
    /// slot holds its) counted.
    fn promote(&mut self, mac: MacAddr, slot: usize) -> &mut SenderState {
        let mut state = SenderState::default();
        if self.sightings[slot].mac == Some(mac) {
            let sighting = std::mem::take(&mut self.sightings[slot]);
            // What its first frame would have counted, had it been tracked then.
            if sighting.sent {
                state.rate.record(sighting.at, 1);
            }
            if let Some(ip) = sighting.answered {
                state.rare_mut().answered.note(ip);
            }
        }
        let (state, forgotten) = self.tracked.get_or_insert_with(mac, || state);
        if let Some((forgotten, forgotten_state)) = forgotten {
            self.evicted += 1;
            if forgotten_state.answered_many() {
                self.proxies.remove(&forgotten);
            }
        }
        state
    }

    fn slot(&self, mac: MacAddr) -> usize {
        self.hasher.hash_one(mac) as usize & (self.sightings.len() - 1)
    }
}
