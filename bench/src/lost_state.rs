//! Row 11: running `mtp upload` again on a folder it already uploaded and published, with the state
//! lost (a fresh state directory against the same server): how long it takes beside the fresh upload
//! of the same folder, and how many body bytes it sends again (issue 23, case 4).

use anyhow::{Context, Result};
use mtp_bench::report::{Row, Verdict};
use mtp_fakes::fake_mapillary::MapillaryFaults;
use serde_json::json;

use super::{dir_bytes, fresh_fake, mb, remove_dir, say, Bench};

impl Bench {
    /// Rows 11a (many small images) and 11b (2 MB images).
    pub(super) fn lost_state_rows(&mut self) -> Vec<Row> {
        let small = self.sizes.many_small;
        let small = (small.0.min(2_500), small.1);
        let large = self.sizes.small;
        [("11a", "small", small), ("11b", "2mb", large)]
            .into_iter()
            .map(|(id, label, size)| {
                self.lost_state_row(id, label, size).unwrap_or_else(|e| {
                    Row::error(id, "Re-run of a published folder, state lost", &e)
                })
            })
            .collect()
    }

    fn lost_state_row(
        &mut self,
        id: &str,
        label: &str,
        (count, bytes): (usize, u64),
    ) -> Result<Row> {
        let dir = self.generate(&format!("lost-{label}"), count, bytes)?;
        let file_bytes = dir_bytes(&dir)?;
        let parts = count.div_ceil(1000);
        let fake = fresh_fake(MapillaryFaults::default())?;
        let first_home = self.home(&format!("lost-{label}-first"));
        self.mtp.prepare_home(&first_home, &fake, "")?;
        let fresh = self.mtp.upload(&first_home, &dir, "upload.log", None)?;
        let after_fresh = fake.stats();
        after_fresh
            .check_complete(count, false)
            .and_then(|_| after_fresh.check_published_exactly_once(count, parts))
            .context("after the first upload")?;
        // The same folder, the same server, a new state directory.
        let second_home = self.home(&format!("lost-{label}-again"));
        self.mtp.prepare_home(&second_home, &fake, "")?;
        let again = self.mtp.upload(&second_home, &dir, "upload.log", None)?;
        let after = fake.stats();
        after
            .check_complete(count, false)
            .and_then(|_| after.check_published_exactly_once(count, parts))
            .context("after the upload with the state lost (published twice?)")?;
        let resent = after
            .upload_bytes_received
            .saturating_sub(after_fresh.upload_bytes_received);
        let image_posts = |s: &mtp_fakes::fake_mapillary::MapillaryStats| {
            s.requests.get("POST /upload/:key").copied().unwrap_or(0)
        };
        let offsets = |s: &mtp_fakes::fake_mapillary::MapillaryStats| {
            s.requests.get("GET /upload/:key").copied().unwrap_or(0)
        };
        let posts = image_posts(&after) - image_posts(&after_fresh);
        let gets = offsets(&after) - offsets(&after_fresh);
        remove_dir(&dir);
        let ratio = again.wall.as_secs_f64() / fresh.wall.as_secs_f64();
        say(format!(
            "lost state {label}: fresh {:.2} s, again {:.2} s, {resent} body bytes re-sent, \
             {posts} POSTs, {gets} offset GETs",
            fresh.wall.as_secs_f64(),
            again.wall.as_secs_f64()
        ));
        Ok(Row {
            id: id.to_string(),
            measure: format!(
                "Re-run of a published folder with the state lost, {count} × {} ({})",
                mb(bytes),
                mb(file_bytes)
            ),
            mtp: format!(
                "{:.2} s, {} re-sent ({posts} POSTs, {gets} offset requests)",
                again.wall.as_secs_f64(),
                mb(resent)
            ),
            other: format!("its fresh upload: {:.2} s", fresh.wall.as_secs_f64()),
            result: format!("{ratio:.2}× the fresh upload's time"),
            target: "≤ 1× the fresh upload's time, 0 bytes re-sent".to_string(),
            verdict: Verdict::from_bool(ratio <= 1.0 && resent == 0),
            data: json!({
                "count": count, "file_bytes": file_bytes, "fresh_wall_s": fresh.wall.as_secs_f64(),
                "again_wall_s": again.wall.as_secs_f64(), "ratio": ratio, "bytes_resent": resent,
                "posts": posts, "offset_requests": gets,
            }),
        })
    }
}
