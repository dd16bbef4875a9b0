#!/usr/bin/env python3
"""Record what the official Mapillary client reads from each real camera file in tests/data/real/.

Installs mapillary_tools (pinned below) from PyPI into its own venv, runs `mapillary_tools process` on a copy
of every JPEG (one folder per file, so no file's reading depends on another's), with the sequence checks that
would drop or alter images turned off, and writes position, UTC capture time and heading per file into
tests/data/real/golden.json. `sequence/tests/real_files.rs` compares mtp's reading with it.

Usage: python3 scripts/golden/record.py [--venv DIR]   (default venv: target/golden/venv)

Why each setting (mapillary_tools 0.14.7 source, mapillary/mapillary_tools on GitHub):
- one folder per file: `process_sequence_properties.py` groups images by folder and camera; in a group it
  spreads equal times (`_interpolate_subsecs_for_sorting`) and gives an image without heading the bearing to
  the next image (`geo.interpolate_directions_if_none`). Alone, a file keeps its own values, except that an
  image without any heading gets 0 (same function, `len(sequence) == 1`).
- `--duplicate_distance -1 --duplicate_angle -1`: `duplication_check` drops an image when
  `distance <= max_duplicate_distance`; nothing is at a negative distance.
- `--cutoff_time`/`--cutoff_distance` huge and `MAPILLARY_TOOLS_MAX_CAPTURE_SPEED_KMH` huge (`constants.py`):
  no cut and no speed rejection. `--skip_zigzag_check`: no zig-zag rejection.
- `--geotag_source native`: EXIF then XMP through `exif_read.ExifRead` (pure Python); the default adds
  `exiftool_runtime`, which needs an exiftool binary and would make the result depend on the machine.
- `TZ=UTC`: an offset-less local time becomes a naive datetime that `geo.as_unix_time` converts with the
  machine's time zone; UTC makes the recording reproducible (and equal to reading such times as UTC).
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MAPILLARY_TOOLS_VERSION = "0.14.7"
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "real"
HUGE = "1000000000"


def ensure_venv(venv: Path) -> Path:
    exe = venv / "bin" / "mapillary_tools"
    if exe.exists():
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
        if MAPILLARY_TOOLS_VERSION in out:
            return exe
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"mapillary_tools=={MAPILLARY_TOOLS_VERSION}"],
        check=True,
    )
    return exe


def utc_iso(seconds: float) -> str:
    t = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_capture_time(s: str) -> float:
    # MAPCaptureTime: "%Y_%m_%d_%H_%M_%S_%f" with milliseconds, UTC (mapillary_tools `types.py`).
    t = datetime.datetime.strptime(s, "%Y_%m_%d_%H_%M_%S_%f").replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=ROOT / "target" / "golden" / "venv")
    ap.add_argument("--data", type=Path, default=DATA, help="folder of JPEGs (default tests/data/real)")
    ap.add_argument("--out", type=Path, help="where to write (default DATA/golden.json)")
    args = ap.parse_args()
    exe = ensure_venv(args.venv)
    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dirs = []
        for f in files:
            d = tmp / f.stem
            d.mkdir()
            shutil.copy2(f, d / f.name)
            dirs.append(str(d))
        desc = tmp / "desc.json"
        env = dict(os.environ)
        env.update(
            TZ="UTC",
            MAPILLARY_TOOLS_MAX_CAPTURE_SPEED_KMH=HUGE,
            MAPILLARY_TOOLS_PROMPT_DISABLED="YES",
            MAPILLARY_DISABLE_API_LOGGING="YES",
        )
        cmd = [
            str(exe), "process", *dirs,
            "--desc_path", str(desc),
            "--geotag_source", "native",
            "--skip_process_errors",
            "--duplicate_distance", "-1", "--duplicate_angle", "-1",
            "--cutoff_time", HUGE, "--cutoff_distance", HUGE,
            "--skip_zigzag_check",
            "--num_processes", "0",
        ]
        run = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if not desc.exists():
            sys.stderr.write(run.stdout + run.stderr)
            return 1
        for entry in json.loads(desc.read_text()):
            name = Path(entry["filename"]).name
            if "error" in entry:
                results[name] = {"error": {"type": entry["error"].get("type"),
                                           "message": entry["error"].get("message")}}
                continue
            t = parse_capture_time(entry["MAPCaptureTime"])
            heading = entry.get("MAPCompassHeading", {}).get("TrueHeading")
            results[name] = {
                "latitude": entry["MAPLatitude"],
                "longitude": entry["MAPLongitude"],
                "altitude": entry.get("MAPAltitude"),
                "captured_at": utc_iso(t),
                "captured_at_ms": round(t * 1000),
                "heading": heading,
            }
    missing = [f.name for f in files if f.name not in results]
    for name in missing:
        results[name] = {"error": {"type": "not in mapillary_tools output", "message": None}}
    golden = {
        "recorded_with": f"mapillary_tools {MAPILLARY_TOOLS_VERSION} (PyPI)",
        "command": "mapillary_tools process <one folder per file> --geotag_source native "
                   "--duplicate_distance -1 --duplicate_angle -1 --cutoff_time 1e9 --cutoff_distance 1e9 "
                   "--skip_zigzag_check (TZ=UTC, MAPILLARY_TOOLS_MAX_CAPTURE_SPEED_KMH=1e9)",
        "note": "Written by scripts/golden/record.py; do not edit. Deliberate differences of mtp's reading "
                "are in differences.json beside this file.",
        "files": dict(sorted(results.items())),
    }
    out = args.out or args.data / "golden.json"
    out.write_text(json.dumps(golden, indent=2) + "\n")
    print(f"wrote {out} ({len(results)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
