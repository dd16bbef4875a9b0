//! The `multipart/form-data` body of a picture upload, streamed from disk.
//!
//! Built by hand because the plugin API's reqwest has no `multipart` feature, and because a streamed part
//! of known length lets us send an exact `Content-Length` while holding at most one chunk of the file in
//! memory. Fields as panoramax_cli 1.4.1 sends them (`panoramax_cli/upload.py` `upload_single_file`):
//! `isBlurred` = `false`, then the picture as field `file` with its file name and `image/jpeg`; and, for a
//! picture whose capture time mtp spread within its second, `override_capture_time` (see
//! [`crate::upload::capture_time_override`]).

use std::path::Path;

use futures::StreamExt;
use plugin_api::http::reqwest::Body;
use plugin_api::prelude::*;
use plugin_api::tokio::io::AsyncReadExt;

/// Bytes read from the file per chunk.
const CHUNK: usize = 256 * 1024;

/// A ready-to-send form.
pub struct Form {
    /// `multipart/form-data; boundary=...`.
    pub content_type: String,
    /// Exact length of the body.
    pub length: u64,
    /// The streamed body.
    pub body: Body,
}

/// A boundary that cannot occur in the text parts; in the picture it is as unlikely as any random
/// 128-bit string.
fn boundary() -> String {
    format!(
        "mtp-panoramax-{}",
        plugin_api::sdk::redirect::random_state()
    )
}

/// A file name safe inside a quoted header parameter (quotes, backslashes and line breaks escaped the way
/// browsers do).
fn quoted(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The text before the picture's bytes, and the text after them.
pub fn envelope(boundary: &str, file_name: &str, capture_time: Option<&str>) -> (String, String) {
    let field = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut head = field("isBlurred", "false");
    if let Some(time) = capture_time {
        head.push_str(&field("override_capture_time", time));
    }
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
         Content-Type: image/jpeg\r\n\r\n",
        quoted(file_name)
    ));
    let tail = format!("\r\n--{boundary}--\r\n");
    (head, tail)
}

/// The form uploading the picture at `path` as `file_name`, with `capture_time` as
/// `override_capture_time` when given.
pub async fn picture_form(
    path: &Path,
    file_name: &str,
    capture_time: Option<&str>,
) -> Result<Form, PluginError> {
    let io = |err: std::io::Error| PluginError::other(format!("{}: {err}", path.display()));
    let file = plugin_api::tokio::fs::File::open(path).await.map_err(io)?;
    let size = file.metadata().await.map_err(io)?.len();
    let boundary = boundary();
    let (head, tail) = envelope(&boundary, file_name, capture_time);
    let length = head.len() as u64 + size + tail.len() as u64;
    let chunks = futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut chunk = vec![0u8; CHUNK];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<Vec<u8>, std::io::Error>(chunk), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    let stream = futures::stream::once(async move { Ok(head.into_bytes()) })
        .chain(chunks)
        .chain(futures::stream::once(async move { Ok(tail.into_bytes()) }));
    Ok(Form {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        length,
        body: Body::wrap_stream(stream),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_names_the_file_and_closes_the_form() {
        let (head, tail) = envelope("B", "a \"b\".jpg", None);
        assert!(head.starts_with("--B\r\nContent-Disposition: form-data; name=\"isBlurred\""));
        assert!(!head.contains("override_capture_time"));
        assert!(head.contains(
            "name=\"file\"; filename=\"a %22b%22.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        ));
        assert_eq!(tail, "\r\n--B--\r\n");
    }

    #[test]
    fn envelope_carries_the_capture_time_before_the_file() {
        let (head, _) = envelope("B", "a.jpg", Some("2020-05-10T06:45:03.250Z"));
        let time = head
            .find("name=\"override_capture_time\"\r\n\r\n2020-05-10T06:45:03.250Z\r\n")
            .expect("the field is there");
        assert!(time < head.find("name=\"file\"").unwrap());
    }
}
