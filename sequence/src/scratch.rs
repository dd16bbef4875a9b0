//! Unnamed scratch files in the system's temporary directory (`TMPDIR` on Unix), where mtp keeps what it
//! would otherwise hold in memory for every image of a sequence: the scan's images
//! ([`crate::ImageList`]) and the host's packed pages. The system removes such a file when mtp exits,
//! however it exits. It is read back at positions, never mapped: mapped pages would count in the
//! resident set again.

use std::fs::File;
use std::io;
use std::path::PathBuf;

/// Where scratch files are made.
pub fn dir() -> PathBuf {
    std::env::temp_dir()
}

/// A new scratch file in [`dir`].
pub fn create() -> io::Result<File> {
    tempfile::tempfile_in(dir())
}

/// Up to `buf.len()` bytes of `file` from `at`, leaving any file position alone on Unix. Elsewhere the
/// read moves the file's position: a caller that also writes at the position must serialise the two.
#[cfg(unix)]
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, at)
}

/// See the Unix [`read_at`].
#[cfg(windows)]
pub fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, at)
}

/// See the Unix [`read_at`].
#[cfg(not(any(unix, windows)))]
pub fn read_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(at))?;
    file.read(buf)
}

/// Exactly `buf.len()` bytes of `file` from `at` (see [`read_at`]).
pub fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, at) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What went wrong with a scratch file, as the user needs it: a full disk said as such, and what to do.
pub fn describe_error(cause: &io::Error) -> String {
    match cause.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => format!(
            "disk full ({cause}): free some space there, or set TMPDIR to a directory on a disk with \
             room, then run the command again"
        ),
        _ => format!("{cause} (set TMPDIR to a directory mtp can write to)"),
    }
}
