//! The status API on the metrics listener (`/api/v1/...`) and the status page (`/`): what the
//! agent knows right now, read-only. `docs/api.md` documents it.

pub mod page;

use arpwatch_core::observation::Timestamp;
use arpwatch_core::status::StatusView;

/// A view with nothing in it, made at `now`.
pub fn empty_view(now: Timestamp) -> StatusView {
    StatusView {
        generated: now,
        node: None,
        ips: Vec::new(),
        conditions: Vec::new(),
        recent_events: Vec::new(),
        kernel: None,
        truncated: false,
    }
}
