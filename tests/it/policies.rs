//! Namespace policies enforced on live topics, with the official Python client as producer and
//! consumer (`tests/python/policies_live.py`): max producers/consumers, message TTL, backlog
//! quota (`producer_exception`, `consumer_backlog_eviction`), each set on a live topic through
//! the admin REST API and effective within seconds.

use crate::harness::python::python;
use crate::harness::standalone::Standalone;
use crate::pulsar_python::run_script;

#[test]
fn policies_take_effect_on_live_topics() {
    let Some(py) = python() else { return };
    let node = Standalone::start();
    run_script(&py, "policies_live", &node);
}
