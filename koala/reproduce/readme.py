"""The README's report block: the summary of the latest report (markdown.summary) between
two markers, rewritten by the run that wrote the report, so the front page never shows
figures that the committed report does not."""

import os
import pathlib

START, END = "<!-- report:start", "<!-- report:end -->"


def block_span(text, path):
    """(start, end) of the text between the markers' lines; ValueError naming `path` when
    they are missing or out of order."""
    begin = text.find(START)
    end = text.find(END, begin) if begin >= 0 else -1
    if begin < 0 or end < 0:
        raise ValueError(f"{path}: no report block to replace (a line starting {START!r} "
                         f"and a later {END!r})")
    return text.index("\n", begin) + 1, end


def check(path):
    """Fails before hours of training when `path` could not take the block."""
    block_span(pathlib.Path(path).read_text(), path)


def replace(path, block):
    """Writes `block` between the markers of README `path`; the rest is kept byte for byte.
    Atomic: a kill leaves the old README or the new one."""
    path = pathlib.Path(path)
    text = path.read_text()
    start, end = block_span(text, path)
    updated = text[:start] + block.rstrip("\n") + "\n" + text[end:]
    temporary = path.with_name(path.name + ".koala-tmp")
    temporary.write_text(updated)
    os.replace(temporary, path)
