"""What a run logged to TensorBoard, read back the way TensorBoard reads it (purged steps left out)."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def logged_scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of each event of scalar `tag` in `logdir`, in the order TensorBoard shows them."""
    events = EventAccumulator(str(logdir))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def logged_steps(out: Path) -> dict[str, list[int]]:
    """Tag -> the steps it was logged at, scalars and images, in the run's TensorBoard folder."""
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {tag: [event.step for event in events.Scalars(tag)] for tag in tags["scalars"]}
    return scalars | {tag: [event.step for event in events.Images(tag)] for tag in tags["images"]}
