"""The notebooks run headlessly with their defaults on a fresh clone, offline, on the CPU."""

import pytest

from tests.notebooks import execute_notebook, image_count, printed_text


@pytest.mark.slow
def test_inspection_notebook_trains_a_quick_run_when_none_exists_and_shows_it(tmp_path):
    outputs = execute_notebook(
        "inspection.ipynb", {"RUN_DIR": str(tmp_path / "none"), "QUICK_RUN_DIR": str(tmp_path / "quick")}
    )
    text = printed_text(outputs)
    assert "training a short demo run" in text
    assert "column 0: " in text and ("kept" in text or "rejected" in text)
    for metric in ("F_max", "IoU", "accuracy", "S_measure", "weighted_F"):
        assert metric in text
    assert image_count(outputs) == 3  # synthetic pairs, predictions, worst images
    assert (tmp_path / "quick/segmentation.pth").is_file()
