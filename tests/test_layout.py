"""The source tree stays readable: short modules, and packages entered only by their public face."""

from __future__ import annotations

import re

from _live import ROOT

SRC = ROOT / "src" / "fingerspell"
MAX_LINES = 360  # one concern a module; past this a module holds two
FACED = ("hands", "extract")  # packages whose modules only they import


def test_no_module_is_longer_than_one_concern():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_packages_with_a_public_face_are_entered_only_through_it():
    pattern = re.compile(r"from\s+(?:fingerspell|\.+)\.?(" + "|".join(FACED) + r")\.\w+\s+import")
    reaching = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in FACED:
            continue
        reaching += [f"{rel}: {m.group(0)}" for m in pattern.finditer(path.read_text(encoding="utf-8"))]
    assert reaching == []
