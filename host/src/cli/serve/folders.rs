//! The folder picker's listing (`GET /api/folders`): the directories under the user's home, one level at
//! a time, so a photographer can pick a sequence folder without typing its full path. Confined to the
//! home directory: a path is resolved (symbolic links and `..` included) before it is compared, so
//! neither `..` nor a link pointing elsewhere leads out, and a link that does is not listed.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A folder's listing.
#[derive(Debug, Serialize)]
pub(crate) struct Listing {
    /// The home directory (the picker's top).
    pub(crate) home: PathBuf,
    /// The folder listed, resolved.
    pub(crate) path: PathBuf,
    /// Its parent, unless it is the home directory.
    pub(crate) parent: Option<PathBuf>,
    /// How many JPEG files it holds itself (a sequence folder has some).
    pub(crate) images: usize,
    /// Its sub-folders, by name (hidden ones left out), each resolved.
    pub(crate) folders: Vec<Folder>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Folder {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

/// Why a folder is not listed (the message names the path).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FolderError {
    #[error("no home directory is known here (HOME is not set)")]
    NoHome,
    #[error("{0}: only folders inside your home directory can be browsed")]
    OutsideHome(PathBuf),
    #[error("{path}: {cause}")]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// The home directory, resolved.
fn home() -> Result<PathBuf, FolderError> {
    let home = dirs::home_dir().ok_or(FolderError::NoHome)?;
    home.canonicalize()
        .map_err(|cause| FolderError::Unreadable { path: home, cause })
}

/// `path` as the page means it: a relative path is taken from the home directory (the server's working
/// directory means nothing to someone using the page).
pub(crate) fn from_home(path: PathBuf) -> PathBuf {
    match dirs::home_dir() {
        Some(home) if path.is_relative() => home.join(path),
        _ => path,
    }
}

/// Lists `path` (the home directory when `None`; a relative path is taken from the home directory).
pub(crate) fn list(path: Option<&Path>) -> Result<Listing, FolderError> {
    let home = home()?;
    let wanted = match path {
        None => home.clone(),
        Some(p) if p.as_os_str().is_empty() => home.clone(),
        Some(p) => home.join(p),
    };
    let path = wanted
        .canonicalize()
        .map_err(|cause| FolderError::Unreadable {
            path: wanted.clone(),
            cause,
        })?;
    if !path.starts_with(&home) {
        return Err(FolderError::OutsideHome(wanted));
    }
    let unreadable = |cause| FolderError::Unreadable {
        path: path.clone(),
        cause,
    };
    let mut folders = Vec::new();
    let mut images = 0;
    for entry in std::fs::read_dir(&path).map_err(unreadable)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
            images += 1;
            continue;
        }
        // Resolved, so a link is listed only when it stays inside the home directory.
        let Ok(resolved) = entry.path().canonicalize() else {
            continue;
        };
        if resolved.is_dir() && resolved.starts_with(&home) {
            folders.push(Folder {
                name,
                path: resolved,
            });
        }
    }
    folders.sort_by_key(|f| f.name.to_lowercase());
    let parent = (path != home)
        .then(|| path.parent().map(Path::to_path_buf))
        .flatten();
    Ok(Listing {
        home,
        path,
        parent,
        images,
        folders,
    })
}
