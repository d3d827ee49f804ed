"""The notebook's own definitions (imports, functions, classes, UPPER_CASE constants), for the tests and
the benchmarks: its networks and datasets as the notebook defines them, without running its trainings."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "assignment3.ipynb"


def notebook_definitions(notebook: str | os.PathLike = NOTEBOOK) -> dict:
    """Run only the imports, functions, classes and UPPER_CASE constants of the notebook's code cells
    (no training, no plots); return the namespace they define, e.g. ns["build_net"]."""
    from IPython.core.inputtransformer2 import TransformerManager
    cells = json.loads(Path(notebook).read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for node in ast.parse(TransformerManager().transform_cell(source)).body:  # magics -> plain Python
            wanted = isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) or (
                isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets))
            if wanted:
                exec(compile(ast.Module([node], []), str(notebook), "exec"), namespace)
    return namespace
