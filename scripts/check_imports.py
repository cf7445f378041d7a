#!/usr/bin/env python3
"""Fails when a target imports a project module that Package.swift does not declare as its
dependency: the declared graph is the architecture (ARCHITECTURE.md), so it must be the real one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = re.compile(r'\.(?:target|testTarget|executableTarget|systemLibrary)\(\s*name:\s*"(\w+)"(.*?)\)\s*,\s*$', re.S | re.M)
IMPORT = re.compile(r'^\s*(?:@testable\s+)?import\s+(\w+)', re.M)


def declared() -> dict[str, tuple[set[str], Path]]:
    targets: dict[str, tuple[set[str], Path]] = {}
    for name, rest in TARGET.findall((ROOT / "Package.swift").read_text()):
        deps = re.search(r'dependencies:\s*\[([^\]]*)\]', rest)
        path = re.search(r'path:\s*"([^"]+)"', rest)
        folder = ROOT / path.group(1) if path else ROOT / ("Tests" if name.endswith("Tests") else "Sources") / name
        targets[name] = (set(re.findall(r'"(\w+)"', deps.group(1))) if deps else set(), folder)
    return targets


def main() -> int:
    targets = declared()
    problems = []
    for name, (deps, folder) in sorted(targets.items()):
        for source in sorted(folder.rglob("*.swift")):
            for module in IMPORT.findall(source.read_text()):
                if module in targets and module not in deps:
                    problems.append(f"{source.relative_to(ROOT)}: imports {module}, not a declared dependency of {name}")
    for line in problems:
        print(line, file=sys.stderr)
    print(f"check_imports: {len(targets)} targets, {len(problems)} undeclared imports")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
