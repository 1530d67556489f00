//! A consumer attached to a non-persistent subscription: what the dispatcher looks at (permits,
//! priority, Key_Shared ranges, the connection's queue) and what the stats show.

use std::sync::Arc;

use crate::outbound::Outbound;
use crate::stats::{ClientInfo, RateMeter};
use crate::subscription::KeySharedSpec;

/// A consumer attached to the subscription.
pub struct Member {
    pub(super) key: u64,
    pub(super) consumer_id: u64,
    pub(super) name: String,
    pub(super) priority: i32,
    pub(super) permits: i64,
    pub(super) key_shared: Option<KeySharedSpec>,
    pub(super) out: Outbound,
    pub(super) client: ClientInfo,
    pub(super) metadata: Vec<(String, String)>,
    pub(super) meter: Arc<RateMeter>,
}
