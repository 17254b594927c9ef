import json
import re
from pathlib import Path

import pytest

from vaelib.cli import main
from vaelib.course.coursework import CourseworkError, make_student_notebook, make_student_versions, strip_solutions

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _nb(*cells):
    return {"cells": list(cells), "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4,
            "nbformat_minor": 5}


def _code(source, outputs=None, count=1):
    return {"cell_type": "code", "execution_count": count, "id": f"c{count}", "metadata": {},
            "outputs": outputs or [], "source": source}


def test_code_solution_becomes_a_stub_at_its_indentation():
    source = "def kl(mu, logvar):\n    ### BEGIN SOLUTION\n    return 0.5 * mu\n    ### END SOLUTION\n\nprint(kl)"
    text, n = strip_solutions(source, "code")
    assert n == 1
    assert text == ("def kl(mu, logvar):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(kl)")


def test_markdown_answer_becomes_your_answer_here():
    text, n = strip_solutions("**Answer.**\n### BEGIN SOLUTION\nBecause the KL is zero.\n### END SOLUTION\n", "markdown")
    assert (text, n) == ("**Answer.**\nYOUR ANSWER HERE\n", 1)


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside an open solution region"),
])
def test_unbalanced_markers_are_refused(source, message):
    with pytest.raises(CourseworkError, match=message):
        strip_solutions(source, "code", "nb.ipynb, cell 3")


def test_solved_cells_lose_outputs_and_others_are_kept():
    untouched = _code(["print(1)"], [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}], 1)
    solved = _code(["### BEGIN SOLUTION\n", "print(2)\n", "### END SOLUTION"],
                   [{"output_type": "stream", "name": "stdout", "text": ["2\n"]}], 2)
    student, n = make_student_notebook(_nb(untouched, solved))
    assert n == 1
    assert student["cells"][0] is untouched
    assert student["cells"][1]["outputs"] == [] and student["cells"][1]["execution_count"] is None
    assert student["cells"][1]["source"] == ["# YOUR CODE HERE\n", "raise NotImplementedError()"]


def test_student_versions_of_a_folder(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    plain = _nb(_code(["x = 1"]))
    text = json.dumps(plain, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (src / "00_plain.ipynb").write_text(text)
    (src / "01_exercise.ipynb").write_text(json.dumps(_nb(_code(["### BEGIN SOLUTION\n", "y = 2\n",
                                                                  "### END SOLUTION\n"]))))
    written = make_student_versions(src, tmp_path / "student")
    assert [(p.name, n, state) for p, n, state in written] == [
        ("00_plain.ipynb", 0, "written"), ("00_plain.py", 0, "written"),
        ("01_exercise.ipynb", 1, "written"), ("01_exercise.py", 1, "written")]
    assert (tmp_path / "student" / "00_plain.ipynb").read_text() == text  # byte for byte
    student_py = (tmp_path / "student" / "01_exercise.py").read_text()
    assert "raise NotImplementedError()" in student_py and "y = 2" not in student_py
    with pytest.raises(CourseworkError, match="inside"):
        make_student_versions(src, src / "student")


def _course(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb"):
        (src / name).write_text(json.dumps(_nb(_code(["def f():\n", "    ### BEGIN SOLUTION\n", "    return 1\n",
                                                       "    ### END SOLUTION\n"]))))
    return src


def _kept_lines(out):
    return [line for line in out.splitlines() if line.startswith("kept ")]


def test_a_rerun_keeps_a_learners_work_and_lists_it_until_overwrite(tmp_path, capsys):
    src, student = _course(tmp_path), tmp_path / "student"
    assert main(["coursework", str(src), "--out", str(student)]) == 0
    first = capsys.readouterr().out
    notebook, twin = student / "01_a.ipynb", student / "02_b.py"
    answered = notebook.read_text().replace("raise NotImplementedError()", "return 1  # my answer")
    notebook.write_text(answered)
    twin.write_text(twin.read_text().replace("raise NotImplementedError()", "return 1  # my answer"))
    edited_twin = twin.read_text()

    assert main(["coursework", str(src), "--out", str(student)]) == 0
    out = capsys.readouterr().out
    assert notebook.read_text() == answered and twin.read_text() == edited_twin  # nothing lost
    kept = _kept_lines(out)
    assert len(kept) == 2 and str(notebook) in kept[0] and str(twin) in kept[1]
    assert all("differs" in line and "--overwrite replaces it" in line for line in kept)
    assert "wrote 0 student files" in out and "2 unchanged, 2 kept" in out
    assert "wrote 4 student files" in first and "0 unchanged, 0 kept" in first

    assert main(["coursework", str(src), "--out", str(student), "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "my answer" not in notebook.read_text() and "my answer" not in twin.read_text()
    assert not _kept_lines(out) and f"replaced {notebook}" in out and f"replaced {twin}" in out
    assert "wrote 2 student files" in out and "2 unchanged, 0 kept" in out

    stamps = {p: p.stat().st_mtime_ns for p in student.iterdir()}
    assert main(["coursework", str(src), "--out", str(student)]) == 0
    out = capsys.readouterr().out
    assert not _kept_lines(out) and "wrote 0 student files" in out and "4 unchanged, 0 kept" in out
    assert {p: p.stat().st_mtime_ns for p in student.iterdir()} == stamps  # unchanged files are not touched


def test_a_twin_written_by_another_jupytext_is_unchanged_but_an_edit_of_it_is_kept(tmp_path):
    src, student = _course(tmp_path), tmp_path / "student"
    make_student_versions(src, student)
    twin = student / "01_a.py"
    text = twin.read_text()
    restamped = re.sub(r"jupytext_version: .*", "jupytext_version: 9.99.0", text)
    restamped = re.sub(r"format_version: .*", "format_version: '9.9'", restamped)
    assert restamped != text
    twin.write_text(restamped)
    results = make_student_versions(src, student)
    assert twin.read_text() == restamped  # left alone, stamps and all
    assert {p.name: state for p, _, state in results} == dict.fromkeys(
        ["01_a.ipynb", "01_a.py", "02_b.ipynb", "02_b.py"], "unchanged")
    twin.write_text(restamped.replace("# YOUR CODE HERE", "# my notes"))
    results = make_student_versions(src, student)
    assert "my notes" in twin.read_text()
    assert {p.name: state for p, _, state in results}["01_a.py"] == "kept"
    states = {p.name: state for p, _, state in make_student_versions(src, student, overwrite=True)}
    assert states["01_a.py"] == "replaced" and twin.read_text() == text


def test_cli_refuses_an_output_folder_inside_the_notebooks(tmp_path, capsys):
    assert main(["coursework", str(NOTEBOOKS), "--out", str(NOTEBOOKS / "student")]) == 2
    err = capsys.readouterr().err
    assert "inside" in err and len(err.strip().splitlines()) == 1
    assert not (NOTEBOOKS / "student").exists()


def test_student_versions_of_the_course(tmp_path, capsys):
    assert main(["coursework", str(NOTEBOOKS), "--out", str(tmp_path / "student")]) == 0
    solved = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    students = sorted((tmp_path / "student").glob("*.ipynb"))
    assert [p.name for p in students] == [p.name for p in solved]
    for path in students:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, path.name
        assert "raise NotImplementedError()" in text, path.name
        assert path.with_suffix(".py").exists()
        json.loads(text)  # still a notebook


def test_a_student_version_stops_at_its_first_exercise(tmp_path):
    """Execute a student notebook (04, the quickest): it must raise NotImplementedError at the first
    exercise cell, after running everything before it."""
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    make_student_versions(NOTEBOOKS, tmp_path / "student")
    (tmp_path / "figures").mkdir()  # the notebooks save figures to ../figures
    path = tmp_path / "student" / "04_reparameterization.ipynb"
    nb = nbformat.read(path, as_version=4)
    first_stub = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "YOUR CODE HERE" in c.source)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    os.environ.setdefault("VAELIB_FAST", "1")
    with pytest.raises(CellExecutionError, match="NotImplementedError"):
        client.execute()
    executed = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert executed[-1] == first_stub  # everything before ran; it stopped at the first exercise
