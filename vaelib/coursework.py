"""Student versions of the notebooks, for instructors: solutions out, everything else kept.

The solved notebooks mark each reference solution with nbgrader's markers::

    ### BEGIN SOLUTION
    ...the solution...
    ### END SOLUTION

``make_student_notebook`` replaces every such region: in a code cell by ``# YOUR CODE HERE`` and
``raise NotImplementedError()`` (at the indentation of the BEGIN line), in a markdown cell by
``YOUR ANSWER HERE``. Cells that held a solution lose their outputs and execution count; every
other cell, and the notebook's metadata, is kept as it was. An instructor who uses nbgrader can
feed the solved notebooks to it unchanged instead.

    python -m vaelib coursework notebooks/ --out student/
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .files import atomic_write

__all__ = ["CourseworkError", "strip_solutions", "make_student_notebook", "make_student_versions"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = "YOUR ANSWER HERE"
_MARKER = re.compile(r"^(\s*)(### (BEGIN|END) SOLUTION)\s*$")


class CourseworkError(ValueError):
    """Unbalanced markers or a bad output folder, with the place to fix."""


def strip_solutions(source: str, cell_type: str, where: str = "cell") -> tuple[str, int]:
    """Replace each solution region of one cell's source; return ``(new_source, regions)``."""
    lines = source.splitlines(keepends=True)
    out, inside, indent, regions = [], False, "", 0
    for number, line in enumerate(lines, 1):
        marker = _MARKER.match(line.rstrip("\n"))
        if marker and marker.group(3) == "BEGIN":
            if inside:
                raise CourseworkError(f"{where}, line {number}: '{BEGIN}' inside an open solution region "
                                      f"(add the missing '{END}' above it)")
            inside, indent, regions = True, marker.group(1), regions + 1
            if cell_type == "code":
                out.append("".join(f"{indent}{stub}\n" for stub in CODE_STUB))
            else:
                out.append(f"{indent}{ANSWER_STUB}\n")
            continue
        if marker and marker.group(3) == "END":
            if not inside:
                raise CourseworkError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise CourseworkError(f"{where}: '{BEGIN}' is never closed (add '{END}' after the solution)")
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, regions


def make_student_notebook(notebook: dict, name: str = "notebook") -> tuple[dict, int]:
    """Return ``(student_notebook, regions)`` for a notebook dict (nbformat 4 JSON)."""
    cells, regions = [], 0
    for index, cell in enumerate(notebook.get("cells", [])):
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        if BEGIN not in text and END not in text:
            cells.append(cell)
            continue
        new_text, n = strip_solutions(text, cell.get("cell_type", "code"), f"{name}, cell {index + 1}")
        regions += n
        new_cell = dict(cell)
        new_cell["source"] = new_text.splitlines(keepends=True) if isinstance(source, list) else new_text
        if cell.get("cell_type") == "code":
            new_cell["outputs"], new_cell["execution_count"] = [], None
        cells.append(new_cell)
    return {**notebook, "cells": cells}, regions


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_json(path: Path, notebook: dict) -> None:
    # nbformat's own layout (indent 1, sorted keys, UTF-8, final newline): untouched cells stay byte for byte
    _write_text(path, json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def make_student_versions(source_dir: str | os.PathLike, out_dir: str | os.PathLike,
                          pattern: str = "[0-9][0-9]_*.ipynb") -> list[tuple[Path, int]]:
    """Write a student version of every notebook in ``source_dir`` (and its ``py:percent`` twin) to ``out_dir``.

    Returns ``[(written_path, solution_regions), ...]``. Refuses an ``out_dir`` inside ``source_dir``
    (student files must never mix with, or overwrite, the solved notebooks) and unbalanced markers
    (checked in every notebook before anything is written).
    """
    src, out = Path(source_dir).resolve(), Path(out_dir).resolve()
    if not src.is_dir():
        raise CourseworkError(f"{source_dir} is not a folder of notebooks")
    if out.exists() and not out.is_dir():
        raise CourseworkError(f"--out {out_dir} is a file: name a folder for the student versions (e.g. student/)")
    if out == src or src in out.parents:
        raise CourseworkError(f"the output folder {out_dir} is inside {source_dir}: choose a folder outside "
                              f"it (e.g. student/) so the solved notebooks are never overwritten")
    notebooks = sorted(src.glob(pattern))
    if not notebooks:
        raise CourseworkError(f"no notebooks matching {pattern} in {source_dir}")
    try:
        import jupytext
    except ImportError:
        raise CourseworkError("writing the .py twins needs jupytext: pip install jupytext "
                              "(or pip install -e '.[dev]')") from None
    students = []
    for path in notebooks:
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CourseworkError(f"{path} is not a readable notebook ({err.msg}, line {err.lineno})") from None
        except UnicodeDecodeError:
            raise CourseworkError(f"{path} is not a readable notebook (not UTF-8 text)") from None
        cells = notebook.get("cells") if isinstance(notebook, dict) else None
        if not isinstance(cells, list) or not all(isinstance(c, dict) and "cell_type" in c for c in cells) \
                or not isinstance(notebook.get("nbformat"), int):
            raise CourseworkError(f"{path} is JSON but not a Jupyter notebook (no nbformat and list of cells): "
                                  f"remove it from {source_dir} or repair it")
        students.append((path, *make_student_notebook(notebook, path.name)))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, notebook, regions in students:
        target = out / path.name
        _write_json(target, notebook)
        twin = jupytext.writes(jupytext.reads(json.dumps(notebook), fmt="ipynb"), fmt="py:percent")
        _write_text(target.with_suffix(".py"), twin)
        written.append((target, regions))
    return written
