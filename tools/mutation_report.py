"""Per-module mutation scores from mutmut's results (`mutants/*.meta`), with the equivalent mutants
of `tools/equivalent_mutants.txt` left out of the denominator.

    python tools/mutation_report.py [--survivors]

Score = killed / (mutants - equivalent), where killed counts mutants that a test failed on, that
timed out or crashed the interpreter; survivors and mutants that no test reached count against it.
"""

import argparse
import json
import tomllib
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT_FILE = ROOT / "tools" / "equivalent_mutants.txt"
# mutmut's verdicts that mean a test (or the interpreter, or the type checker) told the mutant apart.
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}


def equivalent_mutants() -> dict[str, str]:
    """Mutant name -> why it cannot be told apart from the original (`name: reason` lines)."""
    listed = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, reason = line.split(":", 1)
            listed[name.strip()] = reason.strip()
    return listed


def mutated_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return config["only_mutate"]


def module_results(module: str) -> dict[str, int | None]:
    meta = ROOT / "mutants" / f"{module}.meta"
    if not meta.exists():
        return {}
    return json.loads(meta.read_text())["exit_code_by_key"]


def status(exit_code: int | None) -> str:
    verdict = status_by_exit_code[exit_code]
    return "killed" if verdict in DETECTED else verdict


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--survivors", action="store_true", help="list the mutants that no test killed")
    args = parser.parse_args()
    equivalent = equivalent_mutants()
    print("| module | mutants | killed | survived | no tests | other | equivalent | score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    survivors = []
    for module in mutated_modules():
        results = module_results(module)
        counts = Counter(status(code) for name, code in results.items() if name not in equivalent)
        n_equivalent = sum(name in equivalent for name in results)
        judged = len(results) - n_equivalent
        score = f"{100 * counts['killed'] / judged:.1f} %" if judged else "n/a"
        other = judged - counts["killed"] - counts["survived"] - counts["no tests"]
        print(
            f"| {module} | {len(results)} | {counts['killed']} | {counts['survived']} | {counts['no tests']} "
            f"| {other} | {n_equivalent} | {score} |"
        )
        survivors += [
            name for name, code in results.items() if name not in equivalent and status(code) != "killed"
        ]
    if args.survivors:
        print("\n" + "\n".join(survivors))


if __name__ == "__main__":
    main()
