#!/usr/bin/env python3
"""Executes a notebook yunmin wrote and checks that a real kernel shows what it stores.

usage: run_notebook.py NOTEBOOK [NOTEBOOK…] [--timeout SECONDS] [--keep DIR]

Each notebook is validated with nbformat, then run by nbclient on an ipykernel kernel of this
Python (the `python3` kernel of `sys.executable`, never a kernelspec installed elsewhere), in
the notebook's own directory (cells read the CSV files beside it). Checks, per code cell:

  - no cell raises;
  - every stored table (`text/html`) is shown by the executed cell as an HTML table with the same
    columns, the same rows in the same order and the same values: numbers equal within the
    rounding of both renderings (half a unit in the last digit each side, so `111.9883` stored
    matches anything pandas shows that rounds to it, and an exact integer must be exact), other
    cells equal as text as pandas shows it (edges trimmed, newlines and tabs escaped, spaces
    non-breaking);
  - every stored image (`image/png`) has an executed `image/png` output (matplotlib drew it);
  - stored printed text equals the executed stdout.

pandas renders a row index; its cells (`<th>` in the body) and their header cells are not table
data and are left out, and an index or column axis with a name (a second header row) is refused.
Prints one line per checked output, a diff of every differing cell and the traceback of the
first cell that raised (later ones are named with their error); exits 1 if anything
failed. `--keep DIR` writes each executed notebook there.
"""
import argparse
import copy
import html.parser
import math
import os
import re
import sys
from decimal import Decimal, InvalidOperation

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

MISSING = {"", "nan", "none", "null", "<na>", "nat"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class HtmlTable(html.parser.HTMLParser):
    """The first `<table>` of an HTML fragment: header rows and body rows of (is_th, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.head, self.body = [], []
        self.section = None
        self.row = None
        self.cell = None
        self.depth = 0
        self.done = False

    def handle_starttag(self, tag, attrs):
        if self.done:
            return
        if tag == "table":
            self.depth += 1
        elif tag in ("thead", "tbody"):
            self.section = tag
        elif tag == "tr":
            self.row = []
        elif tag in ("th", "td"):
            self.cell = (tag == "th", [])

    def handle_endtag(self, tag):
        if self.done:
            return
        if tag in ("th", "td") and self.cell is not None and self.row is not None:
            self.row.append((self.cell[0], "".join(self.cell[1])))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            (self.head if self.section == "thead" else self.body).append(self.row)
            self.row = None
        elif tag == "table":
            self.done = True

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1].append(data)


def parse_table(fragment):
    """(columns, rows) of the first HTML table in `fragment`, row-index cells left out."""
    p = HtmlTable()
    p.feed(fragment)
    p.close()
    if not p.head:
        raise ValueError("no <thead> header row")
    if len(p.head) != 1:
        raise ValueError(
            f"{len(p.head)} header rows (a named index or column axis); expected one"
        )
    header = [t for _, t in p.head[0]]
    if p.body:
        n_index = 0
        while n_index < len(p.body[0]) and p.body[0][n_index][0]:
            n_index += 1
    else:
        n_index = 0
        while n_index < len(header) and header[n_index].strip() == "":
            n_index += 1
    named = [h for h in header[:n_index] if h.strip()]
    if named:
        raise ValueError(f"the row index has a name ({named}); expected an unnamed index")
    rows = []
    for i, r in enumerate(p.body):
        if sum(1 for is_th, _ in r[:n_index] if is_th) != n_index:
            raise ValueError(f"row {i}: {n_index} index cells expected")
        rows.append([t for _, t in r[n_index:]])
    return header[n_index:], rows


def number(s):
    """(value, half-unit of its last digit) of a rendered number, or None. An integer written
    without a point or exponent is exact."""
    t = s.strip().replace(",", "")
    if t.lower() in ("inf", "-inf", "+inf", "infinity", "-infinity"):
        return float(t), 0.0
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    exact = not any(c in t for c in ".eE")
    half = 0.0 if exact else 0.5 * 10.0 ** d.as_tuple().exponent
    return float(d), half


def same_cell(stored, executed):
    """Whether two rendered cells show the same value (None) or why not (a string)."""
    a, b = stored.strip(), executed.strip()
    if a.lower() in MISSING and b.lower() in MISSING:
        return None
    if a.lower() in ("true", "false") and a.lower() == b.lower():
        return None
    na, nb = number(a), number(b)
    if na is not None and nb is not None:
        (x, hx), (y, hy) = na, nb
        if math.isinf(x) or math.isinf(y):
            return None if x == y else "differs"
        tol = hx + hy + 1e-12 * max(abs(x), abs(y))
        if abs(x - y) <= tol:
            return None
        return f"differs by {abs(x - y):.6g} (rounding allows {tol:.3g})"
    return None if shown(stored).strip() == shown(executed).strip() else "differs"


def shown(s):
    """Text as pandas renders it in HTML: control characters escaped, spaces non-breaking."""
    return s.replace("\xa0", " ").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def compare_tables(stored_html, executed_html, limit=20):
    """Differences between a stored and an executed table, as lines (empty when equal)."""
    try:
        sc, sr = parse_table(stored_html)
    except ValueError as e:
        return [f"stored table unreadable: {e}"]
    try:
        ec, er = parse_table(executed_html)
    except ValueError as e:
        return [f"executed table unreadable: {e}"]
    out = []
    if sc != ec:
        out.append(f"columns differ:\n    stored   {sc}\n    executed {ec}")
        return out
    if len(sr) != len(er):
        out.append(f"{len(sr)} rows stored, {len(er)} rows shown by the kernel")
    for i, (a, b) in enumerate(zip(sr, er)):
        if len(a) != len(b):
            out.append(f"row {i}: {len(a)} cells stored, {len(b)} executed")
            continue
        for col, x, y in zip(sc, a, b):
            why = same_cell(x, y)
            if why:
                out.append(f"row {i}, column {col!r}: stored {x!r}, executed {y!r} — {why}")
    if len(out) > limit:
        out = out[:limit] + [f"… and {len(out) - limit} more differences"]
    return out


def text_of(v):
    return "".join(v) if isinstance(v, list) else (v or "")


def run(path, timeout):
    """Executes the notebook at `path`; returns (executed notebook, failure lines)."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    executed = copy.deepcopy(nb)
    # The `python3` kernel of this interpreter: with no kernel directories, jupyter_client
    # falls back to ipykernel's own spec, whose argv starts with sys.executable.
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    argv0 = km.kernel_spec.argv[0]
    if os.path.realpath(argv0) != os.path.realpath(sys.executable):
        return executed, [f"kernel runs {argv0}, not this Python ({sys.executable})"]
    client = NotebookClient(
        executed,
        km=km,
        timeout=timeout,
        startup_timeout=180,  # a loaded 2-core machine starts kernels slowly
        allow_errors=True,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    client.execute()

    failures = []
    raised = False
    for idx, (cs, ce) in enumerate(zip(nb.cells, executed.cells)):
        if cs.cell_type != "code":
            continue
        name = cs.get("id", f"#{idx}")
        errors = [o for o in ce.outputs if o.output_type == "error"]
        for e in errors:
            # The first raising cell with its own frame (later ones often fail because of it).
            frames = e.get("traceback", [])
            tb = "" if raised else "\n" + ANSI.sub("", "\n".join(frames[:3] + frames[-1:]))
            raised = True
            failures.append(f"{name}: raised {e.ename}: {e.evalue}{tb}")
        if errors:
            continue
        ex_tables = [o for o in ce.outputs if "text/html" in o.get("data", {})]
        ex_images = [o for o in ce.outputs if "image/png" in o.get("data", {})]
        ex_stdout = "".join(
            text_of(o.text) for o in ce.outputs if o.output_type == "stream" and o.name == "stdout"
        )
        n_tab = n_img = 0
        st_stdout = ""
        for o in cs.outputs:
            data = o.get("data", {})
            if "text/html" in data:
                if n_tab >= len(ex_tables):
                    failures.append(f"{name}: stored table {n_tab} not shown by the kernel")
                else:
                    diff = compare_tables(text_of(data["text/html"]), text_of(ex_tables[n_tab].data["text/html"]))
                    if diff:
                        failures.append(f"{name}: table {n_tab} differs:\n  " + "\n  ".join(diff))
                    else:
                        rows = len(parse_table(text_of(data["text/html"]))[1])
                        print(f"{path}: {name}: table {n_tab} ({rows} rows) equal")
                n_tab += 1
            elif "image/png" in data:
                if n_img >= len(ex_images):
                    failures.append(f"{name}: stored image {n_img} but the kernel drew no image/png")
                else:
                    print(f"{path}: {name}: image {n_img} drawn")
                n_img += 1
            elif o.output_type == "stream" and o.name == "stdout":
                st_stdout += text_of(o.text)
        if st_stdout or ex_stdout:
            a, b = st_stdout.split(), ex_stdout.split()
            bad = len(a) != len(b) or any(same_cell(x, y) for x, y in zip(a, b))
            if bad:
                failures.append(f"{name}: printed text differs:\n  stored   {st_stdout!r}\n  executed {ex_stdout!r}")
            else:
                print(f"{path}: {name}: printed text equal")
    return executed, failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    ap.add_argument("--keep", help="directory for the executed notebooks")
    a = ap.parse_args()
    failed = False
    for path in a.notebooks:
        executed, failures = run(path, a.timeout)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            nbformat.write(executed, os.path.join(a.keep, os.path.basename(path)))
        for f in failures:
            print(f"{path}: FAIL {f}")
        if failures:
            failed = True
        else:
            print(f"{path}: OK, every cell ran and shows the stored outputs")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
