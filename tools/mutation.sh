#!/usr/bin/env bash
# Mutation testing of the core modules, with their coverage (not part of .ci/run; about 40 min on 2 cores).
#
#   bash tools/mutation.sh            # all core modules: coverage, mutmut, then the per-module table
#   bash tools/mutation.sh 'metrics*' # only the mutants whose names match (mutmut's patterns)
#
# The modules and the tests that check them are set in pyproject.toml's [tool.mutmut]: the whole
# project is copied to mutants/, each mutant is checked by the tests that ran its function (tests
# marked `slow` are left out), and tools/mutation_report.py prints the scores; equivalent mutants are
# listed, with why, in tools/equivalent_mutants.txt. `mutmut browse` or `mutmut show NAME` shows a mutant.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r tools/requirements-mutation.txt

modules=$(python3 - <<'PY'
import tomllib
print(",".join(path.removesuffix(".py").replace("/", ".") for path in tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["only_mutate"]))
PY
)
coverage_args=()
for module in ${modules//,/ }; do coverage_args+=("--cov=$module"); done
python3 -m pytest -q -m "not slow" -p no:cacheprovider "${coverage_args[@]}" --cov-report=term-missing:skip-covered

rm -rf mutants
python3 -m mutmut run --max-children "${MUTATION_JOBS:-2}" "$@" > mutants.log 2>&1 || { tail -n 40 mutants.log; exit 1; }
python3 tools/mutation_report.py --survivors
