#!/usr/bin/env bash
# Mutation testing of the core modules, with their coverage (not part of .ci/run).
#
#   bash tools/mutation.sh                          # coverage, then every core module, then the table
#   bash tools/mutation.sh metrics.py data.py       # only these modules (no coverage step)
#   bash tools/mutation.sh --recheck [MODULE ...]   # after adding tests: check the survivors again
#
# Each module is checked by its own tests (pyproject.toml's [tool.mutation] own_tests; tools/mutation.py
# says how), MUTATION_JOBS mutants at once (default 2). Results are kept in mutants/ between runs;
# delete it to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r tools/requirements-mutation.txt

if [ $# -eq 0 ]; then
    modules=$(python3 -c 'import tomllib; print(" ".join(
        "--cov=" + p.removesuffix(".py").replace("/", ".")
        for p in tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutation"]["own_tests"]))')
    # shellcheck disable=SC2086  # one --cov flag per module
    python3 -m pytest -q -m "not slow" -p no:cacheprovider $modules --cov-report=term-missing:skip-covered
fi

python3 tools/mutation.py run --jobs "${MUTATION_JOBS:-2}" "$@"
python3 tools/mutation.py report --survivors
