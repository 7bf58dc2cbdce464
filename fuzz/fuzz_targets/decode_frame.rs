//! The user-space frame decoders on arbitrary bytes. The first byte picks the link type
//! (Ethernet, Linux cooked v1, v2), the rest is the frame, as `seed_frames` writes them.
#![no_main]

use arpwatch_core::decode::{Decoded, LinkType};
use arpwatch_core::observation::{Direction, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = match selector % 3 {
        0 => LinkType::Ethernet,
        1 => LinkType::LinuxSll,
        _ => LinkType::LinuxSll2,
    };
    match link.decode(frame) {
        Decoded::Neigh(neigh) => {
            // Whatever was accepted must make a well-formed observation with at most two VLAN
            // tags, of the protocol its record says, ND fields only for ND.
            let record = *neigh.record();
            let obs = neigh.into_observation(
                Timestamp::from_secs(1),
                "fuzz".into(),
                1,
                Direction::Ingress,
            );
            assert!(obs.vlan.as_slice().len() <= 2);
            assert_eq!(obs.nd.is_some(), record.proto == arpwatch_common::proto::NDP);
            if let Some(nd) = obs.nd {
                assert_eq!(nd.lladdr.is_some(), record.lladdr_present == 1);
                assert_eq!(record.nd_flags & !arpwatch_common::na_flag::ALL, 0);
            }
        }
        Decoded::Malformed(reason) => assert!(!reason.as_str().is_empty()),
        Decoded::Other => {}
    }
});
