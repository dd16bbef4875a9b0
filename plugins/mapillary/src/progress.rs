//! Byte and file progress of one entity, reported to the host as increments that never go backwards and
//! never count a byte twice, however many attempts it takes.

use std::sync::atomic::{AtomicU64, Ordering};

use plugin_api::prelude::*;

/// Progress of one entity of `length` bytes.
pub struct EntityProgress {
    ctx: Context,
    length: u64,
    /// The furthest position reported so far.
    reported: AtomicU64,
    /// Reports nothing (entities that are not part of the totals, like manifests).
    silent: bool,
}

impl std::fmt::Debug for EntityProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityProgress")
            .field("length", &self.length)
            .field("reported", &self.reported)
            .finish()
    }
}

impl EntityProgress {
    /// Progress of an entity of `length` bytes, nothing reported yet.
    pub fn new(ctx: &Context, length: u64) -> EntityProgress {
        EntityProgress {
            ctx: ctx.clone(),
            length,
            reported: AtomicU64::new(0),
            silent: false,
        }
    }

    /// Progress that is tracked but never reported.
    pub fn new_silent(ctx: &Context) -> EntityProgress {
        EntityProgress {
            silent: true,
            ..EntityProgress::new(ctx, 0)
        }
    }

    /// The entity is known to be sent up to `position` (the server's offset, or bytes handed to the
    /// network): reports what is beyond the furthest position reported so far. Bytes re-sent after a
    /// failed attempt are therefore not counted again.
    pub fn reach(&self, position: u64) {
        // The last bytes are left to `finish`, which follows at once with the file: one event instead of
        // two for an image sent in one chunk.
        if position >= self.length {
            return;
        }
        let before = self.reported.fetch_max(position, Ordering::Relaxed);
        if position > before && !self.silent {
            self.ctx.progress(ProgressEvent::Advance {
                bytes: position - before,
                files: 0,
            });
        }
    }

    /// The entity is acknowledged: reports the rest of its bytes and one file.
    pub fn finish(&self) {
        let before = self.reported.swap(self.length, Ordering::Relaxed);
        if self.silent {
            return;
        }
        self.ctx.progress(ProgressEvent::Advance {
            bytes: self.length.saturating_sub(before),
            files: 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::sdk::testing::TestHost;

    #[test]
    fn monotonic_and_exact() {
        let host = TestHost::new();
        let p = EntityProgress::new(&host.context(), 100);
        p.reach(30);
        p.reach(10); // a retry starting over from the server's offset
        p.reach(50);
        p.reach(500);
        p.finish();
        let (bytes, files) = host
            .progress_events()
            .iter()
            .fold((0, 0), |(b, f), e| match e {
                ProgressEvent::Advance { bytes, files } => (b + bytes, f + files),
                _ => (b, f),
            });
        assert_eq!((bytes, files), (100, 1));
    }
}
