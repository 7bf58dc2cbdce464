//! Network interfaces as arpwatch follows them: which exist ([`LinkWatcher`], over rtnetlink),
//! which the operator selected ([`IfaceSelector`]), what changed ([`LinkChange`]) and which MACs
//! belong to this host ([`LocalMacs`]).
//!
//! Everything is keyed by ifindex, the kernel's identity for a link: a name can move from one
//! link to another (rename, delete and recreate), an ifindex only names one link at a time, and a
//! link that is deleted is always reported as removed before a new link with its index is added.

mod selector;
mod table;
mod watcher;

pub use selector::IfaceSelector;
pub use table::{LinkChange, LinkInfo, LocalMacs};
pub use watcher::LinkWatcher;
