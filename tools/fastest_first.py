"""pytest plugin for mutation testing (tools/mutation.py loads it with `-p fastest_first`): run the
tests in the order of their recorded durations, quickest first.

mutmut stops a mutant's tests at the first failure (`-x`) and lists them in no particular order, so a
mutant that a 0.1 s test kills may first wait for a 7 s training run. mutmut records each test's
duration in `mutmut-stats.json` in the folder it runs the tests from; before that file exists (its first
pass over the tests) the order is left as it is.
"""

import json
from pathlib import Path

import pytest

STATS_FILE = Path("mutmut-stats.json")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not STATS_FILE.is_file():
        return
    durations = json.loads(STATS_FILE.read_text())["duration_by_test"]
    # Unknown tests (new since the durations were recorded) go last; the sort is stable.
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
