"""The command line the measurement scripts next to the tests share: a folder of
PNG images, the JPEG qualities to measure at, and how many images to take."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parser(doc: str, quality, limit: int | None = None) -> argparse.ArgumentParser:
    """folder, -q/--quality (a list when `quality` is one, else a single value) and -n/--limit."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("folder", help="PNG images (e.g. ../shared/data/kodak)")
    p.add_argument("-q", "--quality", type=int, nargs="+" if isinstance(quality, list) else None, default=quality)
    p.add_argument("-n", "--limit", type=int, default=limit,
                   help="first N images only" + (f" (default {limit})" if limit else ""))
    return p


def images(args: argparse.Namespace) -> list[Path]:
    """The first --limit PNG images of the folder, sorted; an empty list (after one line on stderr) when there are none."""
    paths = sorted(Path(args.folder).glob("*.png"))[:args.limit]
    if not paths:
        print(f"no PNG images in {args.folder}", file=sys.stderr)
    return paths
