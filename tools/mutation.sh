#!/usr/bin/env bash
# Mutation testing of the core modules, with their coverage (not part of .ci/run).
#
#   bash tools/mutation.sh               # coverage, then every core module's mutants, then the table
#   bash tools/mutation.sh 'metrics.*'   # only the mutants whose names match (mutmut's patterns)
#   bash tools/mutation.sh --recheck     # after adding tests: survivors are checked again
#
# The modules and the tests that check them are set in pyproject.toml's [tool.mutmut]: the project is
# copied to mutants/, each mutant is checked by the tests that ran its function (tests marked `slow`
# are left out), and tools/mutation_report.py prints the scores, leaving out the equivalent mutants of
# tools/equivalent_mutants.txt. Results are kept in mutants/ between runs; delete it to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r tools/requirements-mutation.txt

if [ "${1:-}" = --recheck ]; then
    shift
    python3 - <<'PY'
import json
from pathlib import Path

from mutmut.stats import status_by_exit_code

for meta in Path("mutants").rglob("*.py.meta"):
    data = json.loads(meta.read_text())
    # Forget the verdict of survivors and of mutants no test reached, so that mutmut checks them again.
    data["exit_code_by_key"] = {
        name: None if status_by_exit_code[code] in ("survived", "no tests") else code
        for name, code in data["exit_code_by_key"].items()
    }
    meta.write_text(json.dumps(data))
PY
else
    modules=$(python3 -c 'import tomllib; print(" ".join(
        "--cov=" + p.removesuffix(".py").replace("/", ".")
        for p in tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"]))')
    # shellcheck disable=SC2086  # one --cov flag per module
    python3 -m pytest -q -m "not slow" -p no:cacheprovider $modules --cov-report=term-missing:skip-covered
fi

mkdir -p mutants
python3 -m mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" > mutants/run.log 2>&1 || {
    tail -n 40 mutants/run.log
    exit 1
}
python3 tools/mutation_report.py --survivors
