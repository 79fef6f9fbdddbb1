//! Abuse limits of the submit path: a token-bucket rate limit (pending count lives in the store).

use std::time::{Duration, Instant};

/// A token bucket: `burst` submissions at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct RateLimit {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            tokens: capacity,
            per_sec: f64::from(per_minute) / 60.0,
            last: Instant::now(),
        }
    }

    /// Takes a token if one is there; otherwise says how long until one will be.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.per_sec <= 0.0 {
            Err(Duration::from_secs(3600))
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refills() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(60, 3);
        for _ in 0..3 {
            assert!(r.try_take(t0).is_ok());
        }
        let wait = r.try_take(t0).expect_err("empty");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(r.try_take(t0 + Duration::from_millis(1100)).is_ok());
        assert!(r.try_take(t0 + Duration::from_millis(1100)).is_err());
    }
}
