//! MTPDU's `MTPUploaderPhotoUUID` as a scan keeps it: the 16 bytes of a UUID written as MTPDU writes one
//! (lower-case, hyphenated), else the text as it was. Every image of an MTPDU sequence has its own, and a
//! scan holds every image at once: as text it was 48 bytes of heap an image (5 MB at 100,000).

use std::fmt;

/// A photo's UUID; [`fmt::Display`] gives back exactly the text it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PhotoUuid {
    /// A canonical UUID's bytes.
    Bytes([u8; 16]),
    /// Any other text, unchanged.
    Text(Box<str>),
}

/// Where the hyphens of a canonical UUID are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl PhotoUuid {
    /// Keeps `text`: as bytes when it is a canonical UUID, else as it is.
    pub fn new(text: &str) -> PhotoUuid {
        Self::canonical_bytes(text).map_or_else(|| PhotoUuid::Text(text.into()), PhotoUuid::Bytes)
    }

    fn canonical_bytes(text: &str) -> Option<[u8; 16]> {
        let text = text.as_bytes();
        if text.len() != 36 || HYPHENS.iter().any(|&at| text[at] != b'-') {
            return None;
        }
        let mut digits = text
            .iter()
            .enumerate()
            .filter(|(at, _)| !HYPHENS.contains(at))
            .map(|(_, &c)| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            });
        let mut bytes = [0u8; 16];
        for byte in &mut bytes {
            *byte = (digits.next()?? << 4) | digits.next()??;
        }
        Some(bytes)
    }
}

impl fmt::Display for PhotoUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhotoUuid::Text(text) => f.write_str(text),
            PhotoUuid::Bytes(bytes) => {
                // Written into one buffer: once for every image that goes into a descriptor.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [b'-'; 36];
                let mut digits = (0..36).filter(|at| !HYPHENS.contains(at));
                for byte in bytes {
                    for nibble in [byte >> 4, byte & 0xf] {
                        if let Some(at) = digits.next() {
                            text[at] = HEX[usize::from(nibble)];
                        }
                    }
                }
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PhotoUuid;

    #[test]
    fn a_uuid_is_kept_as_bytes_and_any_text_comes_back_as_it_was() {
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert!(matches!(PhotoUuid::new(uuid), PhotoUuid::Bytes(_)));
        for text in [
            uuid,
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "0f8fad5bd9cb469fa16570867728950e",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
            "",
            "photo-1",
        ] {
            assert_eq!(PhotoUuid::new(text).to_string(), text);
        }
        assert!(matches!(
            PhotoUuid::new("0F8FAD5B-D9CB-469F-A165-70867728950E"),
            PhotoUuid::Text(_)
        ));
    }
}
