//! The kernel parser and the user-space decoder on the same bytes. Every frame of the testkit's
//! catalogue (`arpwatch_core::testkit::catalogue`: valid ARP requests and replies, valid Neighbor
//! Solicitations and Advertisements, tags, padding, every malformed kind of both, frames that are
//! neither and frames cut where a parser could stumble) runs through
//! the real XDP program and both TC classifiers (egress, and ingress where the XDP slot is taken)
//! with BPF_PROG_TEST_RUN and through
//! `decode_ethernet`, and both must give the same outcome: a valid frame the same record
//! (timestamp, ifindex and direction aside) and the `arp` or `ndp` counter, a malformed one the
//! kernel's `malformed` counter and `Decoded::Malformed`, anything else none of them. Where they differ by design (802.3 LLC/SNAP) the
//! catalogue says so, with the reason.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); without it this test fails, never skips.

mod support;

use arpwatch::{CounterTotals, KernelProbe, DEFAULT_RING_BYTES};
use arpwatch_common::{direction, Counter, NeighRecord};
use arpwatch_core::decode::{decode_ethernet, Decoded};
use arpwatch_core::testkit::catalogue::{self, Class, Expected};
use aya::maps::{MapData, RingBuf};
use aya::programs::TestRunOptions;
use std::time::Duration;
use support::kernel::{drain_records, Hook};

/// What a kernel program made of one frame, read from its counters and its ring.
#[derive(Clone, Copy, Debug, PartialEq)]
enum KernelOutcome {
    /// The record, with the parts that do not come from the frame zeroed as the decoder leaves
    /// them: `ts_boot_ns`, `ifindex`, and `direction` (ingress); and whether `arp` or `ndp`
    /// counted it.
    Valid(NeighRecord, Class),
    Malformed,
    Other,
}

impl KernelOutcome {
    fn class(self) -> Class {
        match self {
            KernelOutcome::Valid(_, class) => class,
            KernelOutcome::Malformed => Class::Malformed,
            KernelOutcome::Other => Class::Other,
        }
    }
}

fn decoded_class(decoded: &Decoded) -> Class {
    match decoded {
        Decoded::Neigh(frame) => Class::of(frame.record()),
        Decoded::Malformed(_) => Class::Malformed,
        Decoded::Other => Class::Other,
    }
}

/// One loaded probe, de-duplication off so that every valid frame is recorded, run frame by
/// frame: each outcome is what that one run added to the counters and the ring.
struct Kernel {
    probe: KernelProbe,
    ring: RingBuf<MapData>,
}

impl Kernel {
    fn load() -> Kernel {
        let mut probe = KernelProbe::load_with_dedup(DEFAULT_RING_BYTES, Duration::ZERO)
            .expect("load the kernel programs (run as root)");
        let ring = probe.take_ring().unwrap();
        Kernel { probe, ring }
    }

    fn run(&mut self, hook: Hook, frame: &[u8], name: &str) -> KernelOutcome {
        let before = self.probe.counters().unwrap();
        let opts = TestRunOptions { data_in: Some(frame), ..Default::default() };
        let result = hook
            .test_run(&self.probe, opts)
            .unwrap_or_else(|e| panic!("{name}: BPF_PROG_TEST_RUN on {hook:?}: {e}"));
        assert_eq!(result.return_value, hook.pass_verdict(), "{name}: {hook:?} verdict");
        let after = self.probe.counters().unwrap();
        let records = drain_records(&mut self.ring);

        let dir = hook.direction();
        let delta = |c: Counter, d: u8| after.get(c, d) - before.get(c, d);
        assert_eq!(delta(Counter::RingFull, dir), 0, "{name}: {hook:?} ring full");
        assert_eq!(delta(Counter::Suppressed, dir), 0, "{name}: de-duplication is off");
        assert_other_direction_untouched(&before, &after, 1 - dir, name);
        let counted = (
            delta(Counter::Arp, dir),
            delta(Counter::Ndp, dir),
            delta(Counter::Malformed, dir),
            records.as_slice(),
        );
        let valid = |record: &NeighRecord, class| {
            assert_eq!(record.direction, dir, "{name}: {hook:?} record direction");
            assert_ne!(record.ts_boot_ns, 0, "{name}: {hook:?} record timestamp");
            let record =
                NeighRecord { ts_boot_ns: 0, ifindex: 0, direction: direction::INGRESS, ..*record };
            KernelOutcome::Valid(record, class)
        };
        match counted {
            (1, 0, 0, [record]) => valid(record, Class::Arp),
            (0, 1, 0, [record]) => valid(record, Class::Ndp),
            (0, 0, 1, []) => KernelOutcome::Malformed,
            (0, 0, 0, []) => KernelOutcome::Other,
            (arp, ndp, malformed, records) => panic!(
                "{name}: {hook:?} counted arp {arp}, ndp {ndp} and malformed {malformed} and \
                 wrote {} records: not one outcome",
                records.len()
            ),
        }
    }
}

fn assert_other_direction_untouched(
    before: &CounterTotals,
    after: &CounterTotals,
    other: u8,
    name: &str,
) {
    for c in Counter::ALL {
        assert_eq!(
            after.get(c, other),
            before.get(c, other),
            "{name}: {} of the other direction",
            c.name()
        );
    }
}

#[test]
fn kernel_programs_and_decoder_agree_on_every_catalogue_frame() {
    let mut kernel = Kernel::load();
    let cases = catalogue::cases();
    let mut disagreements = Vec::new();
    for case in &cases {
        let decoded = decode_ethernet(&case.bytes);
        let decoder_as_table = match (case.decoded, decoded) {
            (Expected::Valid(want), Decoded::Neigh(frame)) => *frame.record() == want,
            (Expected::Malformed(want), Decoded::Malformed(got)) => got == want,
            (Expected::Other, Decoded::Other) => true,
            _ => false,
        };
        if !decoder_as_table {
            disagreements.push(format!(
                "{}: the table says {:?}, the decoder {decoded:?}",
                case.name, case.decoded
            ));
        }
        for hook in Hook::ALL {
            let outcome = kernel.run(hook, &case.bytes, case.name);
            if outcome.class() != case.kernel_class() {
                disagreements.push(format!(
                    "{}: {hook:?} gives {outcome:?}, the table says {:?}, the decoder {decoded:?}",
                    case.name,
                    case.kernel_class()
                ));
                continue;
            }
            match (outcome, decoded) {
                // The same frame fields on both sides, and the ones the frame was built with.
                (KernelOutcome::Valid(kernel_record, _), Decoded::Neigh(frame)) => {
                    if kernel_record != *frame.record() {
                        disagreements.push(format!(
                            "{}: {hook:?} records {kernel_record:?}, the decoder {:?}",
                            case.name,
                            frame.record()
                        ));
                    }
                }
                // A documented difference: the classes differ on purpose (see the catalogue).
                _ if case.kernel_differs.is_some() => {}
                (outcome, decoded) => {
                    if outcome.class() != decoded_class(&decoded) {
                        disagreements.push(format!(
                            "{}: {hook:?} gives {outcome:?}, the decoder {decoded:?}",
                            case.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
    // The run itself is the proof of coverage: every class was seen on the kernel side.
    for class in Class::ALL {
        assert!(cases.iter().any(|c| c.kernel_class() == class), "no {class:?} case");
    }
}

#[test]
fn documented_differences_are_the_llc_snap_cases_only() {
    // A new difference must be argued in the catalogue, not slipped in: today only 802.3
    // LLC/SNAP ARP, which the decoder calls malformed and the kernel does not look into.
    let differing: Vec<_> = catalogue::cases()
        .into_iter()
        .filter_map(|c| c.kernel_differs.map(|d| (c.name, c.decoded, d.kernel)))
        .collect();
    assert_eq!(differing.len(), 2, "{differing:#?}");
    for (name, decoded, kernel) in differing {
        assert!(
            matches!(decoded, Expected::Malformed(arpwatch_core::decode::MalformedReason::LlcSnap)),
            "{name}"
        );
        assert_eq!(kernel, Class::Other, "{name}");
    }
}
