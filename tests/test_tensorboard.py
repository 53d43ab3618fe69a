"""The run writer: a resumed run hides what an interrupted one logged after its checkpoint, and runs
started within one second keep their own event files."""

from tests.tensorboard_events import logged_scalars
from utils.tensorboard import run_writer


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint_within_one_second(
    tmp_path, event_files_of_one_second
):
    with run_writer(tmp_path, resumed_step=None) as writer:
        for step in range(1, 5):
            writer.add_scalar("loss", step, step)
    # Interrupted after logging step 4; its last checkpoint was at step 2.
    with run_writer(tmp_path, resumed_step=2) as writer:
        for step in range(3, 5):
            writer.add_scalar("loss", 10 * step, step)
    assert len(list(tmp_path.iterdir())) == 2
    assert logged_scalars(tmp_path, "loss") == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_a_fresh_run_hides_nothing(tmp_path):
    with run_writer(tmp_path, resumed_step=None) as writer:
        writer.add_scalar("loss", 1.0, 5)
    with run_writer(tmp_path, resumed_step=None) as writer:
        writer.add_scalar("loss", 2.0, 1)
    assert logged_scalars(tmp_path, "loss") == [(5, 1.0), (1, 2.0)]
