//! Which file names are plugin libraries on each platform, and what a file name stands for.
//!
//! The rules are values, not `cfg`s, so that every platform's rules are unit-tested on every platform:
//! this workplace builds only for x86_64 Linux, and the macOS and Windows releases are built elsewhere.

/// How a platform names dynamic libraries: `libNAME.so` (Linux and the BSDs), `libNAME.dylib` (macOS),
/// `NAME.dll` (Windows), as cargo names a `cdylib` (rustc's `DLL_PREFIX`/`DLL_SUFFIX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibraryNaming {
    /// The prefix cargo puts before a library's name (`lib`; none on Windows).
    pub prefix: &'static str,
    /// The file-name suffix, dot included.
    pub suffix: &'static str,
    /// File names compare regardless of case (Windows: `MTP_MAPILLARY.DLL` is the same file).
    pub case_insensitive: bool,
}

impl LibraryNaming {
    /// Linux and the other ELF platforms.
    pub const UNIX: LibraryNaming = LibraryNaming {
        prefix: "lib",
        suffix: ".so",
        case_insensitive: false,
    };
    /// macOS (a Rust `cdylib` is a `.dylib`; `.so` bundles are not what cargo builds).
    pub const MACOS: LibraryNaming = LibraryNaming {
        prefix: "lib",
        suffix: ".dylib",
        case_insensitive: false,
    };
    /// Windows.
    pub const WINDOWS: LibraryNaming = LibraryNaming {
        prefix: "",
        suffix: ".dll",
        case_insensitive: true,
    };

    /// The rules of the platform this host was built for.
    pub const fn current() -> LibraryNaming {
        LibraryNaming {
            prefix: std::env::consts::DLL_PREFIX,
            suffix: std::env::consts::DLL_SUFFIX,
            case_insensitive: cfg!(windows),
        }
    }

    /// Whether a file called `file_name` is tried as a plugin: it ends with the platform's suffix and is
    /// not hidden (a `.`-name, such as the `._libfoo.dylib` resource forks macOS leaves on other disks).
    /// The prefix is not required: `foo.so` built by hand loads as well as cargo's `libfoo.so`.
    pub fn is_library(&self, file_name: &str) -> bool {
        !file_name.starts_with('.') && self.strip_suffix(file_name).is_some_and(|s| !s.is_empty())
    }

    /// The name a library file stands for, without the platform's prefix and suffix
    /// (`libmtp_mapillary.so` and `mtp_mapillary.dll` both give `mtp_mapillary`); the id shown for a
    /// library that did not load. A name without the suffix is returned whole.
    pub fn stem<'a>(&self, file_name: &'a str) -> &'a str {
        let Some(stem) = self.strip_suffix(file_name) else {
            return file_name;
        };
        match stem.get(..self.prefix.len()) {
            Some(head) if !self.prefix.is_empty() && self.eq(head, self.prefix) => {
                &stem[self.prefix.len()..]
            }
            _ => stem,
        }
    }

    /// The file name cargo gives the `cdylib` whose library name is `name` on this platform.
    pub fn file_name(&self, name: &str) -> String {
        format!("{}{name}{}", self.prefix, self.suffix)
    }

    fn strip_suffix<'a>(&self, file_name: &'a str) -> Option<&'a str> {
        let split = file_name.len().checked_sub(self.suffix.len())?;
        let tail = file_name.get(split..)?;
        self.eq(tail, self.suffix).then(|| &file_name[..split])
    }

    fn eq(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LibraryNaming;

    #[test]
    fn linux_takes_so_files_with_or_without_the_lib_prefix() {
        let n = LibraryNaming::UNIX;
        assert!(n.is_library("libmtp_mapillary.so"));
        assert!(n.is_library("handmade.so"));
        for name in [
            "libmtp_mapillary.dylib",
            "mtp_mapillary.dll",
            "libfoo.so.1",
            "libfoo.SO",
            ".hidden.so",
            ".so",
            "so",
            "README",
        ] {
            assert!(!n.is_library(name), "{name}");
        }
        assert_eq!(n.stem("libmtp_mapillary.so"), "mtp_mapillary");
        assert_eq!(n.stem("handmade.so"), "handmade");
        assert_eq!(n.file_name("mtp_mtpw"), "libmtp_mtpw.so");
    }

    #[test]
    fn macos_takes_dylib_files_and_skips_resource_forks() {
        let n = LibraryNaming::MACOS;
        assert!(n.is_library("libmtp_mapillary.dylib"));
        for name in ["libmtp_mapillary.so", "._libmtp_mapillary.dylib", "x.DYLIB"] {
            assert!(!n.is_library(name), "{name}");
        }
        assert_eq!(n.stem("libmtp_archive.dylib"), "mtp_archive");
        assert_eq!(n.file_name("mtp_archive"), "libmtp_archive.dylib");
    }

    #[test]
    fn windows_takes_dll_files_in_any_case_and_has_no_prefix() {
        let n = LibraryNaming::WINDOWS;
        for name in ["mtp_mapillary.dll", "MTP_MAPILLARY.DLL", "Plugin.Dll"] {
            assert!(n.is_library(name), "{name}");
        }
        for name in ["libmtp_mapillary.so", "mtp.exe", "mtp_mapillary.dll.bak"] {
            assert!(!n.is_library(name), "{name}");
        }
        assert_eq!(n.stem("MTP_MTPW.DLL"), "MTP_MTPW");
        // "lib" is no prefix on Windows: a library called "library" keeps its name.
        assert_eq!(n.stem("library.dll"), "library");
        assert_eq!(n.file_name("mtp_mtpw"), "mtp_mtpw.dll");
    }

    #[test]
    fn the_current_platform_is_one_of_the_three() {
        let current = LibraryNaming::current();
        assert!(
            [
                LibraryNaming::UNIX,
                LibraryNaming::MACOS,
                LibraryNaming::WINDOWS
            ]
            .contains(&current),
            "{current:?}"
        );
        assert!(current.is_library(&current.file_name("mtp_mapillary")));
    }
}
