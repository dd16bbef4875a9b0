//! The exact bytes sent for one entity, described as pieces (stretches of the file on disk, and bytes built
//! in memory) rather than held in memory, and the ways they are read: a blocking [`Read`]er from any
//! offset, the whole of a small entity at once ([`read_all`]: hashed and sent from the same bytes), the
//! BLAKE3 hash that names the upload session ([`blake3_hex`], for large entities streamed twice), and a
//! bounded async stream for the request body.
//!
//! Memory per stream is at most [`CHUNK`] × ([`QUEUE`] + 2), whatever the size of the file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;

/// Size of the chunks read from disk and handed to the HTTP body: the SDK's one chunk size.
pub const CHUNK: usize = plugin_api::http::CHUNK_SIZE;
/// Chunks read ahead of the network.
pub const QUEUE: usize = 2;

/// One stretch of the outgoing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// `len` bytes of the file from `start`.
    File {
        /// Offset in the file.
        start: u64,
        /// Length.
        len: u64,
    },
    /// Bytes built in memory (the new EXIF segment: at most 64 KiB).
    Bytes(Arc<[u8]>),
}

impl Piece {
    fn len(&self) -> u64 {
        match self {
            Piece::File { len, .. } => *len,
            Piece::Bytes(b) => b.len() as u64,
        }
    }
}

/// What is sent for one file: its pieces, their total length, and what identifies them cheaply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The file the `File` pieces come from.
    pub path: PathBuf,
    /// The pieces, in order.
    pub pieces: Vec<Piece>,
    /// Total length in bytes.
    pub length: u64,
    /// Size of the file when the pieces were planned.
    pub file_size: u64,
    /// Modification time of the file then (ns since the epoch; 0 when unknown).
    pub file_mtime_ns: u128,
    /// md5 (hex) of the in-memory pieces: with the file's size and modification time it identifies the
    /// outgoing bytes without reading the file, so a resumed run can reuse the session key.
    pub fingerprint: String,
}

impl Outgoing {
    /// Builds the description from `pieces` of the file at `path` (size and mtime read now).
    pub fn new(path: &Path, pieces: Vec<Piece>) -> io::Result<Outgoing> {
        let meta = std::fs::metadata(path)?;
        let pieces: Vec<Piece> = pieces.into_iter().filter(|p| p.len() > 0).collect();
        let mut fingerprint = md5::Context::new();
        for piece in &pieces {
            match piece {
                Piece::File { start, len } => {
                    fingerprint.consume(start.to_le_bytes());
                    fingerprint.consume(len.to_le_bytes());
                }
                Piece::Bytes(bytes) => fingerprint.consume(bytes),
            }
        }
        Ok(Outgoing {
            path: path.to_path_buf(),
            length: pieces.iter().map(Piece::len).sum(),
            pieces,
            file_size: meta.len(),
            file_mtime_ns: mtime_ns(&meta),
            fingerprint: format!("{:x}", fingerprint.compute()),
        })
    }
}

/// A file's modification time in ns since the epoch, 0 when the platform has none.
pub fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Reads the outgoing bytes from an offset, seeking in the file only when a file piece starts.
pub struct OutgoingReader {
    file: File,
    pieces: Vec<Piece>,
    index: usize,
    offset_in_piece: u64,
    /// Where the file's cursor is, to avoid a seek per read.
    file_pos: Option<u64>,
}

impl OutgoingReader {
    /// A reader of `out` starting at byte `from` (clamped to its length). Fails when the file is gone or
    /// changed size since the pieces were planned.
    pub fn open(out: &Outgoing, from: u64) -> io::Result<OutgoingReader> {
        let file = File::open(&out.path)?;
        let size = file.metadata()?.len();
        if size != out.file_size {
            return Err(io::Error::other(format!(
                "the file changed size since it was prepared ({} → {size} bytes)",
                out.file_size
            )));
        }
        let mut reader = OutgoingReader {
            file,
            pieces: out.pieces.clone(),
            index: 0,
            offset_in_piece: 0,
            file_pos: None,
        };
        let mut skip = from.min(out.length);
        while let Some(piece) = reader.pieces.get(reader.index) {
            if skip < piece.len() {
                reader.offset_in_piece = skip;
                break;
            }
            skip -= piece.len();
            reader.index += 1;
        }
        Ok(reader)
    }

    /// Fills `buf` as far as the data goes; returns the bytes read (less than `buf.len()` only at the end).
    pub fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }
}

impl Read for OutgoingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(piece) = self.pieces.get(self.index) else {
                return Ok(0);
            };
            let left = piece.len() - self.offset_in_piece;
            if left == 0 {
                self.index += 1;
                self.offset_in_piece = 0;
                continue;
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = match piece {
                Piece::Bytes(bytes) => {
                    let from = self.offset_in_piece as usize;
                    buf[..want].copy_from_slice(&bytes[from..from + want]);
                    want
                }
                Piece::File { start, .. } => {
                    let at = start + self.offset_in_piece;
                    if self.file_pos != Some(at) {
                        self.file.seek(SeekFrom::Start(at))?;
                    }
                    let n = match self.file.read(&mut buf[..want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file is shorter than when it was prepared",
                        ));
                    }
                    self.file_pos = Some(at + n as u64);
                    n
                }
            };
            self.offset_in_piece += n as u64;
            return Ok(n);
        }
    }
}

/// Every outgoing byte, read in one sequential pass. Blocking; for entities small enough to hold.
pub fn read_all(out: &Outgoing) -> io::Result<Vec<u8>> {
    let length = usize::try_from(out.length)
        .map_err(|_| io::Error::other("the entity is too large to hold in memory"))?;
    let mut file = OutgoingReader::open(out, 0)?.file;
    // Read straight into the vector's spare capacity (`File` reads into uninitialised memory): zeroing
    // each image's buffer first was a visible share of an upload of 2 MB images.
    let mut bytes = Vec::with_capacity(length);
    let mut position = 0u64;
    for piece in &out.pieces {
        match piece {
            Piece::File { start, len } => {
                if position != *start {
                    file.seek(SeekFrom::Start(*start))?;
                }
                let n = (&mut file).take(*len).read_to_end(&mut bytes)? as u64;
                if n != *len {
                    return Err(io::Error::other(format!(
                        "the file ended early: {n} of {len} bytes at offset {start}"
                    )));
                }
                position = start + len;
            }
            Piece::Bytes(piece) => bytes.extend_from_slice(piece),
        }
    }
    if bytes.len() != length {
        return Err(io::Error::other(format!(
            "read {} bytes, expected {length}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The BLAKE3 hash (64 hex digits) of `bytes`: what names an upload session (`crate::bundle::image_key`).
pub fn blake3_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The BLAKE3 hash (hex) of every outgoing byte: one sequential pass over the file. Blocking.
pub fn blake3_hex(out: &Outgoing) -> io::Result<String> {
    let mut reader = OutgoingReader::open(out, 0)?;
    let mut digest = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = reader.read_full(&mut buf)?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        total += n as u64;
    }
    if total != out.length {
        return Err(io::Error::other(format!(
            "read {total} bytes, expected {}",
            out.length
        )));
    }
    Ok(digest.finalize().to_hex().to_string())
}

/// The read buffers of one body stream, each zeroed once and used again once the HTTP client has
/// written (and dropped) the chunk it held: a fresh zeroed buffer per chunk cost 9 % of a large upload's
/// CPU in `memset`, plus the page faults of new memory (README, Performance, rows 1b and 3b).
#[derive(Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// At most this many idle buffers are kept: those read ahead plus those in the client's hands.
    const KEPT: usize = QUEUE + 4;

    fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut idle| idle.pop());
        reused.unwrap_or_else(|| vec![0u8; CHUNK])
    }

    fn give_back(&self, buf: Vec<u8>) {
        if let Ok(mut idle) = self.0.lock() {
            if idle.len() < Self::KEPT {
                idle.push(buf);
            }
        }
    }
}

/// A chunk of a body stream: `len` bytes of a pooled buffer, which goes back to its pool when dropped.
struct PooledChunk {
    buf: Vec<u8>,
    len: usize,
    pool: BufferPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

/// The outgoing bytes from `from` as a stream of chunks for a request body. A blocking thread reads ahead
/// at most [`QUEUE`] chunks; it stops when the stream is dropped (the request ended) or `stop()` says so
/// (the user cancelled), in which case the stream ends with an error.
pub fn body_stream(
    out: Arc<Outgoing>,
    from: u64,
    stop: impl Fn() -> bool + Send + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut reader = match OutgoingReader::open(&out, from) {
            Ok(r) => r,
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        };
        let pool = BufferPool::default();
        loop {
            if stop() {
                let _ = tx.blocking_send(Err(io::Error::other("cancelled")));
                return;
            }
            let mut buf = pool.take();
            match reader.read_full(&mut buf) {
                Ok(0) => return,
                Ok(len) => {
                    let chunk = PooledChunk {
                        buf,
                        len,
                        pool: pool.clone(),
                    };
                    if tx.blocking_send(Ok(Bytes::from_owner(chunk))).is_err() {
                        return; // the request is gone
                    }
                }
                Err(err) => {
                    let _ = tx.blocking_send(Err(err));
                    return;
                }
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io::Write;

    fn sample(dir: &Path) -> (PathBuf, Outgoing, Vec<u8>) {
        let path = dir.join("f.bin");
        let content: Vec<u8> = (0..3 * CHUNK + 123).map(|i| (i % 251) as u8).collect();
        File::create(&path)
            .and_then(|mut f| f.write_all(&content))
            .unwrap();
        let new: Arc<[u8]> = Arc::from(&b"NEWSEGMENT"[..]);
        let pieces = vec![
            Piece::File { start: 0, len: 2 },
            Piece::Bytes(new.clone()),
            Piece::File { start: 2, len: 0 },
            Piece::File {
                start: 100,
                len: content.len() as u64 - 100,
            },
        ];
        let out = Outgoing::new(&path, pieces).unwrap();
        let mut expected = content[..2].to_vec();
        expected.extend_from_slice(&new);
        expected.extend_from_slice(&content[100..]);
        (path, out, expected)
    }

    #[test]
    fn reads_from_any_offset_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let (_, out, expected) = sample(dir.path());
        assert_eq!(out.length, expected.len() as u64);
        assert_eq!(out.pieces.len(), 3, "empty pieces are dropped");
        for from in [
            0,
            1,
            2,
            5,
            12,
            13,
            1000,
            CHUNK as u64 + 7,
            out.length,
            out.length + 5,
        ] {
            let mut got = Vec::new();
            OutgoingReader::open(&out, from)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            let from = (from as usize).min(expected.len());
            assert_eq!(got, expected[from..], "from {from}");
        }
        assert_eq!(
            blake3_hex(&out).unwrap(),
            blake3::hash(&expected).to_hex().to_string()
        );
        assert_eq!(read_all(&out).unwrap(), expected);
        assert_eq!(blake3_of(&expected), blake3_hex(&out).unwrap());
    }

    #[test]
    fn fingerprint_depends_on_the_new_bytes_only() {
        let dir = tempfile::tempdir().unwrap();
        let (path, out, _) = sample(dir.path());
        let again = Outgoing::new(&path, out.pieces.clone()).unwrap();
        assert_eq!(again.fingerprint, out.fingerprint);
        let mut other = out.pieces.clone();
        other[1] = Piece::Bytes(Arc::from(&b"OTHER"[..]));
        assert_ne!(
            Outgoing::new(&path, other).unwrap().fingerprint,
            out.fingerprint
        );
    }

    #[test]
    fn a_changed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, out, _) = sample(dir.path());
        File::options()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"more"))
            .unwrap();
        assert!(OutgoingReader::open(&out, 0).is_err());
    }

    #[tokio::test]
    async fn streams_in_bounded_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (_, out, expected) = sample(dir.path());
        // Each chunk dropped before the next is read, as the HTTP client does: the buffers are reused,
        // and a reused buffer never carries bytes of an earlier chunk into a shorter one.
        let mut sent = Vec::new();
        let mut sizes = Vec::new();
        let mut stream = std::pin::pin!(body_stream(Arc::new(out), 7, || false));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            sizes.push(chunk.len());
            sent.extend_from_slice(&chunk);
        }
        assert!(sizes.iter().all(|&n| n <= CHUNK), "{sizes:?}");
        assert!(sizes.last().is_some_and(|&n| n < CHUNK), "{sizes:?}");
        assert_eq!(sent, expected[7..]);
        let stopped: Vec<io::Result<Bytes>> =
            body_stream(Arc::new(sample(dir.path()).1), 0, || true)
                .collect()
                .await;
        assert!(stopped.last().is_some_and(|r| r.is_err()));
    }
}
