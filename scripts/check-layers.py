#!/usr/bin/env python3
"""Fails on any include that goes up the table of folders in docs/architecture.md, and on a
header that the table does not name.

Each folder of the library (include/unroll/X/ and src/X/) may include only its own
headers and those of the folders listed before it in that table; the table is read
from the page itself, so the rule and its documentation cannot drift apart.
  python3 scripts/check-layers.py        # from the repository root; exit 1 on a violation
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
order = re.findall(r"^\| `([a-z]+)/` \|", (root / "docs/architecture.md").read_text(), re.M)
if not order:
    sys.exit("check-layers: no table of folders found in docs/architecture.md")
rank = {name: i for i, name in enumerate(order)}
bad, files = [], 0
for base in (root / "include/unroll", root / "src"):
    for path in sorted(base.rglob("*")):
        if path.suffix not in (".h", ".cpp"):
            continue
        folder = path.relative_to(base).parts[0]
        if folder not in rank:
            bad.append(f"{path.relative_to(root)}: folder {folder}/ is not in the table of docs/architecture.md")
            continue
        files += 1
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+"unroll/([a-z]+)/', line)
            if m and rank.get(m.group(1), len(order)) > rank[folder]:
                bad.append(f"{path.relative_to(root)}:{n} includes unroll/{m.group(1)}/, "
                           f"which is above {folder}/ in docs/architecture.md")
doc = (root / "docs/architecture.md").read_text()
for h in sorted((root / "include/unroll").rglob("*.h")):
    if f"`{h.name}`" not in doc:
        bad.append(f"{h.relative_to(root)} is not named in docs/architecture.md's table")
if bad:
    sys.exit("check-layers: the house and its map disagree:\n  " + "\n  ".join(bad))
print(f"check-layers: {files} files, every include goes down the table {' < '.join(order)}")
