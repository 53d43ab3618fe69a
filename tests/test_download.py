"""download_all.sh against local file servers: files are checked before they are kept, reruns fetch
nothing, and failed or interrupted downloads leave no file behind. The repository's own download folders
are never written: every run puts its files under a temporary BGW_ROOT."""

import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from BigGAN.gan_load import make_biggan_config
from BigGAN.model.BigGAN import Generator
from tests.fixture_files import read_keys_file
from tests.local_server import free_port
from UNet.unet_model import UNet
from utils.errors import UserError
from verify_download import verify

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "download_all.sh"
DOWNLOADERS = [name for name in ("curl", "wget") if shutil.which(name)]
# The Dropbox ids of the released files (the URL is <prefix>/<id>/<name>?dl=1).
IDS = {
    "BigBiGAN_x1.pth": "9w2i45h455k3b4p",
    "bg_direction.pth": "np74kmkohkbx76t",
    "BigBiGAN_ImageNet_z.npy": "y5qr9wwtop7ot6b",
    "BigBiGAN_DUTS-TR_z.npy": "b77in0vuc8jy1yf",
    "BigBiGAN_CUB_train_z.npy": "qgacaoo7urh35j9",
    "BigBiGAN_Flowers_train_z.npy": "fmw2g54xqli59ck",
    "u_net_imagenet.pth": "3nty6x7fwof7xyv",
    "u_net_cub2002011.pth": "90odh34ddpjvuxk",
    "u_net_flowers.pth": "fk8r9q0tvwaxbpl",
}
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Dropbox</title></head><body>Sign in</body></html>\n"


def publish(mirror: Path, name: str, content: bytes) -> bytes:
    """Put `content` where download_all.sh will ask a mirror for the file `name`."""
    path = mirror / IDS[name] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return content


def torch_bytes(obj, tmp_path: Path) -> bytes:
    torch.save(obj, tmp_path / "object.pth")
    return (tmp_path / "object.pth").read_bytes()


def npy_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    np.save(tmp_path / "array.npy", array)
    return (tmp_path / "array.npy").read_bytes()


def script_environment(root: Path, mirror: str, **env: str) -> dict[str, str]:
    """The caller's environment, less settings of the script's own, with the files going under `root`."""
    environment = {key: value for key, value in os.environ.items() if key not in ("UNETS", "BGW_DOWNLOADER")}
    return {**environment, "BGW_ROOT": str(root), "BGW_MIRROR": mirror, **env}


def run_script(root: Path, mirror: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=script_environment(root, mirror, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def files_under(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


@pytest.mark.slow
def test_downloads_are_checked_kept_and_not_fetched_again(tmp_path, serve):
    mirror, root = tmp_path / "mirror", tmp_path / "root"
    root.mkdir()
    expected = {
        "BigGAN/weights/bg_direction.pth": publish(
            mirror, "bg_direction.pth", torch_bytes(torch.randn(120), tmp_path)
        ),
        "embeddings/BigBiGAN_DUTS-TR_z.npy": publish(
            mirror, "BigBiGAN_DUTS-TR_z.npy", npy_bytes(np.random.randn(7, 120).astype(np.float32), tmp_path)
        ),
        "pretrained/u_net_flowers.pth": publish(
            mirror, "u_net_flowers.pth", torch_bytes(UNet().state_dict(), tmp_path)
        ),
    }
    wanted = ["--only", "bg_direction.pth", "--only", "BigBiGAN_DUTS-TR_z.npy", "--only", "u_net_flowers.pth"]

    first = run_script(root, serve(mirror), *wanted)
    assert first.returncode == 0, first.stderr
    assert files_under(root) == expected
    assert "kept pretrained/u_net_flowers.pth (ok: a U-Net of the released layout (width 64)" in first.stdout

    offline = f"http://127.0.0.1:{free_port()}"  # a rerun that tried to fetch anything would fail
    second = run_script(root, offline, *wanted)
    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stdout
    assert "have embeddings/BigBiGAN_DUTS-TR_z.npy (ok: 7 latent embeddings" in second.stdout
    assert files_under(root) == expected


@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_an_html_page_is_rejected_and_deleted(tmp_path, serve, downloader):
    mirror, root = tmp_path / "mirror", tmp_path / "root"
    root.mkdir()
    direction = publish(mirror, "bg_direction.pth", torch_bytes(torch.randn(120), tmp_path))
    publish(mirror, "BigBiGAN_CUB_train_z.npy", HTML_PAGE)

    result = run_script(
        root,
        serve(mirror),
        *("--only", "bg_direction.pth", "--only", "BigBiGAN_CUB_train_z.npy"),
        BGW_DOWNLOADER=downloader,
    )
    assert result.returncode == 1
    assert "BigBiGAN_CUB_train_z.npy cannot be read: it is an HTML page" in result.stderr
    assert "the download of embeddings/BigBiGAN_CUB_train_z.npy from http" in result.stderr
    assert "1 of 2 files are missing or unusable: embeddings/BigBiGAN_CUB_train_z.npy" in result.stderr
    assert files_under(root) == {"BigGAN/weights/bg_direction.pth": direction}


@pytest.mark.parametrize("downloader", DOWNLOADERS)
@pytest.mark.parametrize("server", ["offline", "file missing on the server"])
def test_failed_downloads_exit_non_zero_and_leave_nothing(tmp_path, serve, downloader, server):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "empty").mkdir()
    mirror = f"http://127.0.0.1:{free_port()}" if server == "offline" else serve(tmp_path / "empty")

    result = run_script(root, mirror, "--unets", BGW_DOWNLOADER=downloader)
    assert result.returncode == 1
    assert "error: could not download BigGAN/weights/BigBiGAN_x1.pth from http" in result.stderr
    assert "check the connection and the address, or set BGW_MIRROR to a reachable copy" in result.stderr
    assert "9 of 9 files are missing or unusable" in result.stderr
    assert list(root.iterdir()) == []


def test_a_present_file_that_fails_its_check_is_reported_and_kept(tmp_path):
    root = tmp_path / "root"
    damaged = root / "embeddings" / "BigBiGAN_Flowers_train_z.npy"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(npy_bytes(np.full((3, 120), np.nan, dtype=np.float32), tmp_path))

    result = run_script(root, f"http://127.0.0.1:{free_port()}", "--only", "BigBiGAN_Flowers_train_z.npy")
    assert result.returncode == 1
    assert "3 of 3 rows have NaN or infinite values" in result.stderr
    assert "embeddings/BigBiGAN_Flowers_train_z.npy is present but unusable" in result.stderr
    assert "delete it and rerun to download it again" in result.stderr
    assert "downloading" not in result.stdout
    assert files_under(root) == {"embeddings/BigBiGAN_Flowers_train_z.npy": damaged.read_bytes()}


class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Sends the start of a long file, then nothing until the test ends."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()
        self.wfile.write(b"PK\x03\x04" + bytes(100_000))
        self.wfile.flush()
        self.server.stop.wait(60)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StallingHandler)
    server.daemon_threads = True
    server.stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.stop.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("downloader", DOWNLOADERS)
def test_ctrl_c_during_a_download_leaves_no_partial_file(tmp_path, stalling_server, downloader):
    root = tmp_path / "root"
    root.mkdir()
    script = subprocess.Popen(
        ["bash", str(SCRIPT), "--only", "gan"],
        env=script_environment(root, stalling_server, BGW_DOWNLOADER=downloader),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(path.is_file() and path.stat().st_size for path in root.glob(".downloading.*/*")):
            assert time.monotonic() < deadline and script.poll() is None, "the download never started"
            time.sleep(0.05)
        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group gets it
        assert script.wait(timeout=60) == 130
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
    assert list(root.iterdir()) == []


def test_an_unknown_name_is_refused_before_anything_is_fetched(tmp_path):
    result = run_script(tmp_path, "http://127.0.0.1:9", "--only", "weights")
    assert result.returncode == 2
    assert "--only weights is neither a group (gan, embeddings, unets) nor a file name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_generator_must_load_into_the_full_bigbigan(tmp_path):
    """A zero-filled state dict of the released key layout (the real file is 282 MB of weights)."""
    state = {key: torch.zeros(shape) for key, shape, _ in read_keys_file("biggan128_keys.txt")}
    torch.save(state, tmp_path / "BigBiGAN_x1.pth")
    assert verify("generator", tmp_path / "BigBiGAN_x1.pth").startswith("the 128-px BigBiGAN generator")

    narrow = Generator(**{**make_biggan_config(128), "G_ch": 8}).state_dict()
    torch.save(narrow, tmp_path / "narrow.pth")
    with pytest.raises(UserError, match=r"does not match Generator: wrong shape"):
        verify("generator", tmp_path / "narrow.pth")


@pytest.mark.parametrize(
    "kind, content, message",
    [
        ("generator", HTML_PAGE, "it is an HTML page, not a download of the file itself"),
        ("unet", HTML_PAGE, "it is an HTML page, not a download of the file itself"),
        ("direction", b"PK\x03\x04 truncated", "cannot be read: torch.load failed"),
        ("embeddings", b"\x93NUMPY truncated", "is not a readable .npy array"),
    ],
)
def test_damaged_files_are_named_with_the_reason(tmp_path, kind, content, message):
    path = tmp_path / ("file.npy" if kind == "embeddings" else "file.pth")
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        verify(kind, path)


def test_files_of_the_wrong_shape_are_rejected(tmp_path):
    torch.save(UNet(base_width=16).state_dict(), tmp_path / "narrow_unet.pth")
    with pytest.raises(UserError, match=r"'base_width': 16.*not the released"):
        verify("unet", tmp_path / "narrow_unet.pth")
    torch.save(torch.randn(128), tmp_path / "direction.pth")
    with pytest.raises(UserError, match="must be a tensor of 120 elements"):
        verify("direction", tmp_path / "direction.pth")
    np.save(tmp_path / "z.npy", np.zeros((4, 128), dtype=np.float32))
    with pytest.raises(UserError, match=r"must hold a float matrix \[N, 120\], got \[4, 128\]"):
        verify("embeddings", tmp_path / "z.npy")


def test_the_command_line_prints_the_check_or_the_reason(tmp_path):
    np.save(tmp_path / "z.npy", np.ones((5, 120), dtype=np.float32))
    (tmp_path / "page.npy").write_bytes(HTML_PAGE)
    command = [sys.executable, "-m", "verify_download", "embeddings"]
    good = subprocess.run([*command, str(tmp_path / "z.npy")], cwd=REPO, capture_output=True, text=True)
    assert (good.returncode, good.stdout) == (0, "ok: 5 latent embeddings of 120 values, all finite\n")
    bad = subprocess.run([*command, str(tmp_path / "page.npy")], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"error: --z {tmp_path / 'page.npy'} cannot be read: it is an HTML page")
