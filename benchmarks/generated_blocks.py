"""Generated blocks in the docs: the text between a begin marker and ``<!-- end generated -->``.

Tables in the docs are regenerated from committed JSON (``--write-docs`` of each campaign and
study), never edited by hand; ``tests/test_docs.py`` checks that each block equals what its JSON
gives now. These two functions are the whole protocol.
"""

from __future__ import annotations

END_MARKER = "<!-- end generated -->"


def replace_generated_block(text: str, marker: str, body: str, where: str = "the document") -> str:
    """``text`` with the lines between ``marker`` and the next end marker replaced by ``body``."""
    start = text.find(marker)
    if start < 0:
        raise SystemExit(f"{where}: no generated block marker '{marker}'")
    start += len(marker)
    end = text.find(END_MARKER, start)
    if end < 0:
        raise SystemExit(f"{where}: the block '{marker}' has no '{END_MARKER}'")
    return f"{text[:start]}\n{body}\n{text[end:]}"


def generated_block(text: str, marker: str) -> str | None:
    """What stands between ``marker`` and its end marker (for checks), ``None`` without the block."""
    start = text.find(marker)
    end = text.find(END_MARKER, start)
    return None if start < 0 or end < 0 else text[start + len(marker) : end].strip("\n")
