"""Mutation testing of the core modules, each module checked by its own tests only.

    python tools/mutation.py run [--recheck] [--jobs N] [MODULE ...]   # e.g. run metrics.py data.py
    python tools/mutation.py report [--survivors]
    python tools/mutation.py show MUTANT                                # one mutant's diff
    python tools/mutation.py review                                     # equivalent mutants' changes

The modules and their own tests are listed in pyproject.toml's `[tool.mutation] own_tests`; mutmut's
shared settings are its `[tool.mutmut]`. A module is run in a folder of its own, mutants/<module>/,
that links to the project's files and holds a pyproject.toml mutating that module alone and selecting
its own test files. So a surviving mutant costs its module's tests, not every test that happens to
call the function (training runs included), and modules can be run, and rerun, one at a time.

Score = killed / (mutants - equivalent): killed counts mutants that a test failed on, that timed out
or crashed the interpreter; survivors and mutants that no own test reached count against it. The
equivalent mutants of tools/equivalent_mutants.txt (no observable difference) are left out. Mutants
are numbered within their function, so editing a function renumbers them: `review` prints each listed
mutant's change beside its reason, to check the list after such an edit.
"""

import argparse
import ast
import difflib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "mutants"
EQUIVALENT_FILE = ROOT / "tools" / "equivalent_mutants.txt"
# mutmut's verdicts that mean a test (or the interpreter, or the type checker) told the mutant apart.
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
# Not linked into a module's folder: its own configuration, mutmut's output, and caches.
NOT_LINKED = {"pyproject.toml", "mutants", ".git", ".pytest_cache", ".ruff_cache", "__pycache__"}
# mutmut forks each mutant's test process from one that has run tests already. An OpenMP thread pool
# does not survive a fork: the child's first parallel region would wait forever for the parent's
# threads, and a hung mutant counts as a timeout, i.e. as killed. Single-threaded torch has no pool,
# and with one mutant per core nothing is lost.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Where the test processes import tools/fastest_first.py from (the quickest tests first, so that a mutant
# dies at its cheapest failing test).
PLUGINS = str(ROOT / "tools")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def own_tests() -> dict[str, list[str]]:
    """Module path -> its test files (or single tests, `file::name`), checked against the mutated modules
    and the files that exist."""
    tests = pyproject()["tool"]["mutation"]["own_tests"]
    absent = sorted(module for module in tests if not (ROOT / module).is_file())
    if absent:
        sys.exit(f"pyproject.toml: [tool.mutation] own_tests names modules that do not exist: {absent}")
    missing = sorted(
        path for paths in tests.values() for path in paths if not (ROOT / path.split("::")[0]).is_file()
    )
    if missing:
        sys.exit(f"pyproject.toml: [tool.mutation] own_tests names test files that do not exist: {missing}")
    return tests


def dotted(module: str) -> str:
    """`utils/inputs.py` -> `utils.inputs`, the prefix of its mutants' names."""
    return module.removesuffix(".py").replace("/", ".")


def folder(module: str) -> Path:
    return WORK / dotted(module)


def module_of(mutant: str) -> str:
    """The mutated module a mutant name (`utils.inputs.x_load_direction__mutmut_3`) belongs to."""
    owners = [module for module in own_tests() if mutant.startswith(dotted(module) + ".")]
    if not owners:
        sys.exit(f"{mutant}: not a mutant of the modules in pyproject.toml's [tool.mutation] own_tests")
    return max(owners, key=len)


def source_paths() -> list[str]:
    """The project's code as mutmut copies it: every top-level module and package (tests excluded)."""
    entries = sorted(ROOT.glob("*.py")) + sorted(path.parent for path in ROOT.glob("*/__init__.py"))
    return [entry.name for entry in entries if entry.name not in ("setup.py", "tests", "tools")]


def module_config(module: str, tests: list[str]) -> str:
    """The project's pyproject.toml with a [tool.mutmut] that mutates `module`, checked by `tests`."""
    settings = dict(pyproject()["tool"]["mutmut"])
    settings["source_paths"] = source_paths()
    settings["only_mutate"] = [module]
    settings["pytest_add_cli_args"] = [*settings["pytest_add_cli_args"], "-p", "fastest_first"]
    settings["pytest_add_cli_args_test_selection"] = ["-m", "not slow", *tests]
    # JSON's strings, numbers, booleans and arrays of them are valid TOML values.
    section = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines = (ROOT / "pyproject.toml").read_text().splitlines()
    start = lines.index("[tool.mutmut]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    return "\n".join(lines[:start] + section + [""] + lines[end:]) + "\n"


def prepare(module: str, tests: list[str]) -> Path:
    """The module's folder: links to the project's top-level entries and its own pyproject.toml."""
    here = folder(module)
    here.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        link = here / entry.name
        if entry.name not in NOT_LINKED and not link.is_symlink():
            link.symlink_to(entry)
    (here / "pyproject.toml").write_text(module_config(module, tests))
    return here


def forget_survivors(here: Path) -> None:
    """Clear the verdicts of survivors and of mutants no test reached, so that mutmut checks them again."""
    for meta in (here / "mutants").rglob("*.py.meta"):
        data = json.loads(meta.read_text())
        data["exit_code_by_key"] = {
            name: None if status_by_exit_code[code] in ("survived", "no tests") else code
            for name, code in data["exit_code_by_key"].items()
        }
        meta.write_text(json.dumps(data))


def run(modules: list[str], jobs: int, recheck: bool) -> None:
    tests = own_tests()
    unknown = [module for module in modules if module not in tests]
    if unknown:
        sys.exit(f"not among the mutated modules of pyproject.toml: {unknown}; choose from {sorted(tests)}")
    failed = []
    for module in modules or list(tests):
        here = prepare(module, tests[module])
        if recheck:
            forget_survivors(here)
        start = time.monotonic()
        print(f"{module}: mutmut run, own tests {' '.join(tests[module])}", flush=True)
        # The test processes of killed mutants end without removing pytest's lock files, so pytest keeps
        # their temporary folders: they go to a folder of the run's own, deleted when it ends.
        temporary = here / "tmp"
        temporary.mkdir(exist_ok=True)
        path = os.pathsep.join(filter(None, [PLUGINS, os.environ.get("PYTHONPATH")]))
        env = os.environ | ONE_THREAD | {"PYTEST_DEBUG_TEMPROOT": str(temporary), "PYTHONPATH": path}
        with open(here / "run.log", "w") as log:
            command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
            done = subprocess.run(command, cwd=here, stdout=log, stderr=subprocess.STDOUT, env=env)
        shutil.rmtree(temporary, ignore_errors=True)
        if done.returncode != 0:
            failed.append(module)
            print(f"{module}: mutmut failed (exit {done.returncode}); its output is in {here / 'run.log'}")
            continue
        print(f"{module}: done in {(time.monotonic() - start) / 60:.1f} min", flush=True)
    if failed:
        sys.exit(f"mutmut failed for {', '.join(failed)}: the other modules' results are kept")


def equivalent_mutants() -> dict[str, str]:
    """Mutant name -> why it cannot be told apart from the original (`name: reason` lines)."""
    listed = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, reason = line.split(":", 1)
            listed[name.strip()] = reason.strip()
    return listed


def results(module: str) -> dict[str, int | None]:
    meta = folder(module) / "mutants" / f"{module}.meta"
    return json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}


def status(exit_code: int | None) -> str:
    verdict = status_by_exit_code[exit_code]
    return "killed" if verdict in DETECTED else verdict


def report(list_survivors: bool) -> None:
    equivalent = equivalent_mutants()
    print("| module | mutants | killed | survived | no tests | not run | equivalent | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    survivors, misjudged = [], []
    for module in own_tests():
        misjudged += [
            name for name, code in results(module).items() if name in equivalent and status(code) == "killed"
        ]
        verdicts = {name: status(code) for name, code in results(module).items() if name not in equivalent}
        counts = Counter(verdicts.values())
        n_equivalent = sum(name in equivalent for name in results(module))
        score = f"{100 * counts['killed'] / len(verdicts):.1f} %" if verdicts else "n/a"
        not_run = len(verdicts) - counts["killed"] - counts["survived"] - counts["no tests"]
        print(
            f"| `{module}` | {len(verdicts) + n_equivalent} | {counts['killed']} | {counts['survived']} "
            f"| {counts['no tests']} | {not_run} | {n_equivalent} | {score} |"
        )
        survivors += [name for name, verdict in verdicts.items() if verdict != "killed"]
    if misjudged:
        print("\nListed as equivalent, yet a test killed them (correct tools/equivalent_mutants.txt):")
        print("\n".join(misjudged))
    if list_survivors and survivors:
        print("\nNot killed (python tools/mutation.py show NAME):\n" + "\n".join(survivors))


def show(mutant: str) -> None:
    here = folder(module_of(mutant))
    subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=here, check=True)


@functools.cache
def mutated_functions(module: str) -> dict[str, str] | None:
    """Function name -> source in mutmut's copy of `module` (`x_f__mutmut_orig`, `x_f__mutmut_3`, ...)."""
    copy = folder(module) / "mutants" / module
    if not copy.is_file():
        return None
    source = copy.read_text()
    lines = source.splitlines()
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef)
    }


def mutant_change(mutant: str) -> str:
    """The lines a mutant changes in its function."""
    module = module_of(mutant)
    functions = mutated_functions(module)
    if functions is None:
        return f"(not generated yet: python tools/mutation.py run {module})"
    name = mutant.removeprefix(dotted(module) + ".")
    if name not in functions:
        return "(no such mutant any more)"
    original = name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    mutated = functions[name].replace(name, original, 1)
    lines = difflib.unified_diff(functions[original].splitlines(), mutated.splitlines(), lineterm="", n=0)
    return " | ".join(line.strip() for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def review() -> None:
    for mutant, reason in equivalent_mutants().items():
        print(f"{mutant}\n    why:    {reason}\n    change: {mutant_change(mutant)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="run mutmut over the modules (all by default)")
    run_parser.add_argument("modules", nargs="*", help="module paths as in own_tests, e.g. metrics.py")
    run_parser.add_argument("--jobs", type=int, default=2, help="mutants checked at once (default 2)")
    run_parser.add_argument(
        "--recheck", action="store_true", help="check survivors again, after adding tests"
    )
    report_parser = commands.add_parser("report", help="the per-module table")
    report_parser.add_argument("--survivors", action="store_true", help="also list the mutants not killed")
    show_parser = commands.add_parser("show", help="one mutant's diff")
    show_parser.add_argument("mutant")
    commands.add_parser("review", help="each equivalent mutant's change beside the reason it is listed")
    args = parser.parse_args()
    if args.command == "run":
        run(args.modules, args.jobs, args.recheck)
    elif args.command == "report":
        report(args.survivors)
    elif args.command == "show":
        show(args.mutant)
    else:
        review()


if __name__ == "__main__":
    main()
