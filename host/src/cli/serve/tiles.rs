//! The map tiles under a sequence's track on the page: OpenStreetMap's standard tiles by default, shown
//! with the attribution their licence asks for ("© OpenStreetMap contributors", linked to
//! https://www.openstreetmap.org/copyright: OSMF's attribution guidelines and tile usage policy,
//! https://operations.osmfoundation.org/policies/tiles/). `--tiles URL` takes any `{z}/{x}/{y}` server
//! of the same (slippy map) scheme, `--tiles none` draws the track alone. The page's
//! Content-Security-Policy lets images come from the tile server's origin and nowhere else.

use serde::Serialize;

/// OpenStreetMap's standard tile layer.
pub(crate) const OSM_TILES: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
const OSM_ATTRIBUTION: &str = "© OpenStreetMap contributors";
const OSM_COPYRIGHT: &str = "https://www.openstreetmap.org/copyright";

/// Where the page takes its tiles from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Tiles {
    /// The URL template, with `{z}`, `{x}` and `{y}`.
    pub(crate) url: String,
    /// The attribution shown under the map.
    pub(crate) attribution: String,
    /// Where the attribution links to (OpenStreetMap's copyright page for its tiles).
    pub(crate) attribution_url: Option<String>,
    /// `scheme://host[:port]`, for the Content-Security-Policy.
    #[serde(skip)]
    pub(crate) origin: String,
}

/// The tiles `--tiles` names (`none`: none), or why the value is not a tile URL template.
pub(crate) fn parse(value: &str, attribution: Option<&str>) -> Result<Option<Tiles>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| format!("--tiles {value}: not an http(s) URL (or none)"))?;
    if !["{z}", "{x}", "{y}"].iter().all(|p| value.contains(p)) {
        return Err(format!(
            "--tiles {value}: the URL needs {{z}}, {{x}} and {{y}} (as in {OSM_TILES})"
        ));
    }
    let host = rest.split('/').next().unwrap_or_default();
    let bad = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if host.is_empty() || host.contains(bad) {
        return Err(format!("--tiles {value}: no host name in it"));
    }
    let origin = value[..value.len() - rest.len() + host.len()].to_string();
    let osm = value == OSM_TILES;
    Ok(Some(Tiles {
        url: value.to_string(),
        attribution: attribution
            .map(str::to_string)
            .unwrap_or_else(|| OSM_ATTRIBUTION.to_string()),
        attribution_url: (osm && attribution.is_none()).then(|| OSM_COPYRIGHT.to_string()),
        origin,
    }))
}

/// The page's Content-Security-Policy: our own files only, plus images from the tile server.
pub(crate) fn content_security_policy(tiles: Option<&Tiles>) -> String {
    let images = match tiles {
        Some(t) => format!("'self' data: {}", t.origin),
        None => "'self' data:".to_string(),
    };
    format!(
        "default-src 'self'; img-src {images}; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osm_by_default_with_its_attribution_any_template_or_none() {
        let osm = parse(OSM_TILES, None).unwrap().unwrap();
        assert_eq!(osm.origin, "https://tile.openstreetmap.org");
        assert_eq!(osm.attribution, "© OpenStreetMap contributors");
        assert_eq!(osm.attribution_url.as_deref(), Some(OSM_COPYRIGHT));
        let local = parse("http://127.0.0.1:9/t/{z}/{x}/{y}.png", Some("Local"))
            .unwrap()
            .unwrap();
        assert_eq!(local.origin, "http://127.0.0.1:9");
        assert_eq!(local.attribution_url, None);
        assert!(content_security_policy(Some(&local))
            .contains("img-src 'self' data: http://127.0.0.1:9;"));
        assert!(parse("none", None).unwrap().is_none());
        for bad in [
            "ftp://x/{z}/{x}/{y}",
            "https://x/tiles.png",
            "https:///{z}/{x}/{y}",
            "https://a b/{z}/{x}/{y}",
        ] {
            assert!(parse(bad, None).is_err(), "{bad}");
        }
    }
}
