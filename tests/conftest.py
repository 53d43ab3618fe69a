import json
import os

# tqdm takes TQDM_* settings (TQDM_DISABLE=1, ...) from the environment when it is imported (the imports
# below pull it in): the tests of progress output see tqdm's defaults wherever they run, and so do the
# scripts they start.
for name in [name for name in os.environ if name.startswith("TQDM_")]:
    del os.environ[name]
# The precision a CPU run defaults to depends on the CPU (utils/precision.py); the suite's runs take
# fp32 everywhere, and the tests of bf16 ask for it.
os.environ["BGW_CPU_BF16"] = "0"

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tensorboardX import event_file_writer  # noqa: E402

from tests.fixture_files import FIXTURES  # noqa: E402
from tests.local_server import free_port, wait_for_port  # noqa: E402


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """Scripts run in-process may set torch's thread count (`--threads`); later tests must not inherit
    it, since results that are compared bit for bit with a subprocess depend on it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def no_mutation_stats_in_subprocesses():
    """Mutation testing (tools/mutation.sh): while mutmut records which tests run which functions, it
    marks that in the environment, and scripts started by tests would then try to record too, which
    only the test process can. They run the unmutated code instead; the test process keeps its mark."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        del os.environ["MUTANT_UNDER_TEST"]
    yield


@pytest.fixture
def event_files_of_one_second(monkeypatch):
    """tensorboardX names event files by the second: runs of a test start within one second, as runs
    do on a quick machine, whatever this machine's speed."""
    monkeypatch.setattr(event_file_writer, "time", SimpleNamespace(time=lambda: 1764950000.0))


@pytest.fixture(scope="session")
def reference_results() -> dict:
    return json.loads((FIXTURES / "results.json").read_text())


@pytest.fixture
def serve():
    """Starts `python -m http.server` on a folder and returns its URL; stopped after the test."""
    servers = []

    def start(folder: Path) -> str:
        port = free_port()
        command = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
        server = subprocess.Popen(
            [*command, "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        servers.append(server)
        wait_for_port(port)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.terminate()
        server.wait()
