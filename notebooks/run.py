#!/usr/bin/env python3
"""Runs the notebooks of this folder headless, as CI does.

First checks that every committed notebook is stored without outputs: no code
cell may have outputs or an execution count. Then executes each notebook in a
fresh `python3` kernel with nbclient, in this folder, with the environment of
this process (so `STROOM_STORE` and `STROOM_UK_STORE` reach the notebooks). The
executed copies stay in memory; the committed files are never written.

A notebook fails on any error in a cell, including a failed assertion, or on
a cell that runs longer than the timeout. Exits 1 if any check or notebook
failed, naming the notebook and the cell; 0 otherwise.

Usage:
    python notebooks/run.py                       # check, then run every notebook
    python notebooks/run.py 01-backtest-a-route.ipynb
    python notebooks/run.py --check-only          # only the check for outputs
    python notebooks/run.py --executed DIR        # also save the executed copies in DIR
"""

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

HERE = Path(__file__).resolve().parent
# Terminal colour codes in kernel tracebacks, removed from the messages.
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def stored_outputs(path):
    """The problems of a committed notebook: code cells with outputs or an execution count."""
    notebook = nbformat.read(path, as_version=4)
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"{path.name}: cell {index} has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"{path.name}: cell {index} has execution count {cell.execution_count}")
    return problems


def first_line(cell):
    lines = [line for line in cell.source.splitlines() if line.strip()]
    return lines[0][:100] if lines else "(empty)"


def execute(path, timeout, executed):
    """Runs one notebook; returns None on success, else a message naming the cell."""
    notebook = nbformat.read(path, as_version=4)
    current = {"index": None}

    def on_cell_start(cell, cell_index, **_):
        current["index"] = cell_index

    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_start=on_cell_start,
    )
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        index = current["index"]
        where = f"cell {index} ({first_line(notebook.cells[index])})" if index is not None else "before the first cell"
        kind = "timed out" if isinstance(error, CellTimeoutError) else "failed"
        failure = f"{path.name}: {where} {kind}:\n{COLOUR.sub('', str(error))}"
    if executed:
        executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, executed / path.name)
    return failure


def main():
    parser = argparse.ArgumentParser(description="Check and run the notebooks headless.")
    parser.add_argument("notebooks", nargs="*", help="notebook files (default: every .ipynb in this folder)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default: %(default)s)")
    parser.add_argument("--check-only", action="store_true", help="only check that no notebook is stored with outputs")
    parser.add_argument("--executed", type=Path, help="also write the executed notebooks into this folder")
    args = parser.parse_args()

    paths = [Path(p).resolve() for p in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {HERE}", file=sys.stderr)
        return 1
    if args.executed and args.executed.resolve() == HERE:
        print("--executed must name another folder than the notebooks'", file=sys.stderr)
        return 1

    problems = [problem for path in sorted(HERE.glob("*.ipynb")) for problem in stored_outputs(path)]
    if problems:
        print("Notebooks must be committed without outputs (clear them before committing):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{len(list(HERE.glob('*.ipynb')))} notebooks stored without outputs")
    if args.check_only:
        return 0

    failures = []
    for path in paths:
        started = time.perf_counter()
        failure = execute(path, args.timeout, args.executed)
        seconds = time.perf_counter() - started
        print(f"{'FAILED' if failure else 'ok'}  {path.name}  {seconds:.1f} s", flush=True)
        if failure:
            failures.append(failure)
    for failure in failures:
        print(f"\n{failure}", file=sys.stderr)
    print(f"{len(paths) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
