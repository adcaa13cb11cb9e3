"""The page of text samples a language-model run writes (``samples.txt``) and reads back
for the samples figure: sections, each a ``=== <what> ===`` line and its text. Kept free of
torch, so the figure stage reads pages without it."""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADING = re.compile(r"^=== (.+) ===$", re.MULTILINE)


def format_page(sections: Sequence[tuple[str, str]]) -> str:
    """The page of (what, text) sections, in order."""
    return "".join(f"=== {what} ===\n{text}\n\n" for what, text in sections)


def parse_page(page: str) -> list[tuple[str, str]]:
    """The (what, text) sections of a page written by :func:`format_page` (a text that
    itself holds a heading line would split there: model samples of these texts do not)."""
    heads = list(_HEADING.finditer(page))
    if not heads or heads[0].start() != 0:
        raise ValueError("not a samples page: it does not start with a '=== … ===' line")
    ends = [h.start() for h in heads[1:]] + [len(page)]
    return [(h.group(1), page[h.end() + 1 : end][:-2]) for h, end in zip(heads, ends, strict=True)]
