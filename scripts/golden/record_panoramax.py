#!/usr/bin/env python3
"""Record what Panoramax's reader accepts and reads from each real camera file in tests/data/real/.

Installs geopic-tag-reader (pinned below: the version geovisio 2.15.1 requires) from PyPI into its own venv
and reads every JPEG with `geopic_tag_reader.reader.readPictureMetadata`, the function geovisio calls on
each uploaded picture. Writes tests/data/real/golden_panoramax.json: per file either the position, the UTC
capture time and heading, or the refusal (`missing_fields`, as the server answers it with HTTP 400).
`sequence/tests/real_files.rs` compares mtp's reading and mtp's prediction of Panoramax's acceptance with it.

Usage: python3 scripts/golden/record_panoramax.py [--venv DIR]   (default venv: target/golden/venv-gtr)

geopic-tag-reader localises an offset-less camera time with the zone at the position (timezonefinder +
pytz), so its readings do not depend on the machine's zone; `TZ=UTC` is set anyway.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

GEOPIC_TAG_READER_VERSION = "1.10.1"
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "real"

READ = r"""
import json, sys
from pathlib import Path
from geopic_tag_reader import reader
out = {}
for f in sys.argv[1:]:
    p = Path(f)
    try:
        m = reader.readPictureMetadata(p.read_bytes())
        out[p.name] = {"latitude": m.lat, "longitude": m.lon,
                       "captured_at_ms": round(m.ts.timestamp() * 1000), "heading": m.heading,
                       "time_source": "gps" if m.ts_by_source and m.ts_by_source.gps == m.ts else "camera"}
    except reader.PartialExifException as e:
        out[p.name] = {"refused": {"missing_fields": sorted(e.missing_mandatory_tags), "message": str(e)}}
    except Exception as e:
        out[p.name] = {"refused": {"missing_fields": [], "message": f"{type(e).__name__}: {e}"}}
print(json.dumps(out))
"""


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if py.exists():
        r = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('geopic-tag-reader'))"],
                           capture_output=True, text=True)
        if r.stdout.strip() == GEOPIC_TAG_READER_VERSION:
            return py
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"geopic-tag-reader=={GEOPIC_TAG_READER_VERSION}"],
                   check=True)
    return py


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=ROOT / "target" / "golden" / "venv-gtr")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    py = ensure_venv(args.venv)
    files = sorted(str(p) for p in args.data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    env = dict(os.environ, TZ="UTC")
    r = subprocess.run([str(py), "-c", READ, *files], capture_output=True, text=True, env=env, check=True)
    results = json.loads(r.stdout)
    doc = {
        "reader": f"geopic-tag-reader {GEOPIC_TAG_READER_VERSION} (readPictureMetadata)",
        "files": dict(sorted(results.items())),
    }
    out = args.out or (args.data / "golden_panoramax.json")
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    accepted = sum(1 for v in results.values() if "refused" not in v)
    print(f"{out}: {len(results)} files, {accepted} accepted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
