//! A rate meter: counters bumped on the hot path with one relaxed atomic add each, and rates
//! computed off the hot path by the broker's [`super::RateSampler`] over a sliding window.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts messages and bytes; the sampler stores the rates it computes here.
#[derive(Debug, Default)]
pub struct RateMeter {
    messages: AtomicU64,
    bytes: AtomicU64,
    /// Messages per second over the window, as `f64` bits.
    msg_rate: AtomicU64,
    /// Bytes per second over the window, as `f64` bits.
    byte_rate: AtomicU64,
}

/// What a meter has counted and its current rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeterReading {
    /// Messages counted since the meter was made.
    pub messages: u64,
    /// Bytes counted since the meter was made.
    pub bytes: u64,
    /// Messages per second over the sampler's window.
    pub msg_rate: f64,
    /// Bytes per second over the sampler's window.
    pub byte_rate: f64,
}

impl RateMeter {
    /// Counts `messages` messages of `bytes` bytes in total.
    pub fn record(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters, without the rates.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Counters and rates.
    pub fn read(&self) -> MeterReading {
        let (messages, bytes) = self.totals();
        MeterReading {
            messages,
            bytes,
            msg_rate: f64::from_bits(self.msg_rate.load(Ordering::Relaxed)),
            byte_rate: f64::from_bits(self.byte_rate.load(Ordering::Relaxed)),
        }
    }

    /// Stores the rates (the sampler).
    pub(super) fn set_rates(&self, msg_rate: f64, byte_rate: f64) {
        self.msg_rate.store(msg_rate.to_bits(), Ordering::Relaxed);
        self.byte_rate.store(byte_rate.to_bits(), Ordering::Relaxed);
    }
}

impl MeterReading {
    /// Adds another reading (a topic's publishers, a subscription's consumers).
    pub fn add(&mut self, o: &MeterReading) {
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.msg_rate += o.msg_rate;
        self.byte_rate += o.byte_rate;
    }
}
