"""Executing the project's notebooks headlessly, as CI and a user's `jupyter nbconvert --execute` do."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute_notebook(name: str, overrides: dict | None = None, timeout: int = 600) -> list:
    """Run `name` from the repository root with `overrides` appended to its parameters cell (the first,
    tagged `parameters`, as papermill does); returns the outputs of all code cells, failing on errors."""
    notebook = nbformat.read(ROOT / name, as_version=4)
    parameters = notebook.cells[0]
    assert "parameters" in parameters.metadata.get("tags", []), f"{name}: first cell is not tagged parameters"
    if overrides:
        parameters.source += "\n" + "\n".join(f"{key} = {value!r}" for key, value in overrides.items())
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [output for output in outputs if output.output_type == "error"]
    assert not errors, "\n".join(line for error in errors for line in error.traceback)
    return outputs


def printed_text(outputs: list) -> str:
    return "".join(output.get("text", "") for output in outputs if output.output_type == "stream")


def image_count(outputs: list) -> int:
    return sum("image/png" in output.get("data", {}) for output in outputs)
