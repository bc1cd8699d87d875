#!/usr/bin/env python3
"""Copy the third-party browser assets listed in static/vendor.json from node_modules.

Run by the Makefile after ``npm ci``; the pages then load everything from /static/vendor.
"""

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    spec = json.loads((ROOT / "static" / "vendor.json").read_text())
    out = ROOT / "static" / "vendor"
    for name, entry in spec.items():
        if name.startswith("_") or entry is None:
            continue
        src, dest = ROOT / "node_modules" / entry[0], out / entry[1]
        if not src.exists():
            print(f"vendor: {src} missing (did npm ci run?)", file=sys.stderr)
            return 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
    print(f"vendor: assets copied to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
