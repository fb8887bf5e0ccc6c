"""The trained model in, the shipped bundle out: what `koala ship` reads and writes.

In: a run of `koala train` (its workdir: bundle/, else its newest checkpoint, and its
config.json and metrics.jsonl) or a bundle, of a two-head effnet_unet (a hint model too),
rebuilt to accept any working size (training fixes the input shape).

Out: a bundle whose model blends the two heads as the selection chose, with the vividness
control (koala.models.effnet_unet.inference_model; a hint model keeps its hint input), its
selection.json, and training_log.jsonl: the model's training history, the runs it continued
included (when the run started from a bundle, `model.init`, whose log it then extends).
"""

import dataclasses
import json
import pathlib

import ml_collections

from koala.bundle import files, keras_bundle
from koala.models import effnet_unet
from koala.photo import DEFAULT_STRIDE
from koala.shipping import selection
from koala.training import history

LOG_EVERY = 50  # training-loss lines kept in the shipped log (validation lines: all)
LOG_FILE = "training_log.jsonl"
SELECTION_FILE = "selection.json"
DECODING = ("weight", "temperature", "alpha", "gain")


class NotShippable(ValueError):
    """The model is not a trained two-head effnet_unet (or its run left nothing to load)."""


@dataclasses.dataclass
class Trained:
    """A trained two-head model, ready for the selection at any working size."""

    bundle: keras_bundle.Bundle  # its model takes any working size
    source: str  # the bundle or checkpoint it was loaded from
    run: dict  # the run's config.json ({} for a bundle without its run)
    run_dir: pathlib.Path = None  # where config.json and metrics.jsonl are (None: no run)

    def training_data(self):
        """The run's training data (records or photo folder: koala.training.inputs), or None."""
        if not self.run:
            return None
        from koala.training import inputs  # noqa: PLC0415

        config = ml_collections.ConfigDict(self.run)
        return str(inputs.pipeline(config).training_data(config))


def load_trained(model):
    """A training workdir, a run's bundle/ or a bundle ("default": the shipped one, whose
    blend wraps the trained model) -> Trained."""
    path = pathlib.Path(model)
    try:
        bundle_dir = files.resolve(model)
    except FileNotFoundError:
        return _from_checkpoint(path)
    loaded = keras_bundle.load(bundle_dir)
    inner = [layer for layer in loaded.model.layers if layer.name == loaded.meta["model"]]
    trained = inner[0] if inner else loaded.model
    run_dir = pathlib.Path(bundle_dir).parent if pathlib.Path(bundle_dir).name == "bundle" \
        else None
    run = _run_config(run_dir)
    rebuilt = _rebuild(loaded.meta["model"], loaded.meta.get("config", {}), bundle_dir)
    rebuilt.set_weights(trained.get_weights())
    return Trained(keras_bundle.Bundle(meta=loaded.meta, path=bundle_dir, model=rebuilt),
                   str(bundle_dir), run, run_dir)


def _from_checkpoint(workdir):
    """A run stopped before its bundle: its newest checkpoint, its architecture from
    config.json."""
    import tensorflow as tf  # noqa: PLC0415

    run = _run_config(workdir)
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    if latest is None or not run:
        raise FileNotFoundError(f"{workdir}: no bundle, and no checkpoints/ with config.json")
    model = _rebuild(run["model"]["name"], run["model"]["kwargs"], workdir)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    meta = {"model": run["model"]["name"], "config": run["model"]["kwargs"],
            "size": run["data"]["size"], "output": "regression", "name": run["experiment"]}
    return Trained(keras_bundle.Bundle(meta=meta, path=workdir, model=model), latest, run,
                   workdir)


def _rebuild(name, config, where):
    """Registry model `name` with its training config, at any input size, random weights
    (the trained ones are copied in)."""
    import koala.models  # noqa: PLC0415

    if name != "effnet_unet" or not config.get("with_logits", True):
        raise NotShippable(f"{where}: {name} is not a two-head effnet_unet (ab and "
                           f"ab_logits); koala ship selects how those two heads blend")
    return koala.models.build(name, **{**config, "weights": None})


def _run_config(run_dir):
    config = None if run_dir is None else pathlib.Path(run_dir) / "config.json"
    return json.loads(config.read_text()) if config is not None and config.is_file() else {}


def ship(trained, report, prior, output="default", figure=None):
    """Writes the blended bundle, its selection and training log into `output` ("default":
    koala/weights/default); the accuracy-vs-vividness figure to `figure` when given.
    Returns the bundle directory."""
    target = files.DEFAULT_DIR if str(output) == "default" else pathlib.Path(output)
    previous = _continued_bundle(trained)
    log = training_log(trained.run_dir, previous / LOG_FILE if previous else None)
    known = []
    if previous is not None and (previous / files.META_FILE).is_file():
        known = json.loads((previous / files.META_FILE).read_text()).get("training_runs", [])
    bias = selection.prior_bias(prior)
    accurate, default, vivid = (
        effnet_unet.Blend(report[k]["weight"], report[k]["temperature"],
                          report[k]["alpha"] * bias, report[k]["gain"])
        for k in selection.ROLES)
    blended = effnet_unet.inference_model(trained.bundle.model, accurate, vivid, default)
    meta = {"model": "effnet_unet", "name": "default", "size": report["accurate"]["size"],
            "stride": DEFAULT_STRIDE, "fit": "aspect", "output": "regression",
            "config": trained.bundle.meta.get("config", {}),
            "vividness": report["default_vividness"],
            "decoding": {k: {n: report[k][n] for n in DECODING} for k in selection.ROLES},
            "selection": {k: report[k] for k in ("gray", *selection.ROLES, "curve",
                                                 "imagenet_256")},
            "training_runs": run_summaries(log, known)}
    keras_bundle.save(target, blended, meta)
    (target / SELECTION_FILE).write_text(json.dumps(report, indent=1, default=float))
    (target / LOG_FILE).write_text("".join(json.dumps(line) + "\n" for line in log))
    if figure:
        selection.plot(report["curve"], report["gray"], figure)
    return target


def _continued_bundle(trained):
    """The bundle this run started from (its config.json's model.init), whose training log
    it continues; a bundle without its run continues its own log; None for a fresh run."""
    if trained.run_dir is None:
        return pathlib.Path(trained.bundle.path)
    init = trained.run.get("model", {}).get("init")
    if not init:
        return None
    try:
        return pathlib.Path(files.resolve(init))
    except FileNotFoundError:
        return None


def training_log(run_dir, previous):
    """The shipped model's training history: the earlier runs' lines (from `previous`, a
    training_log.jsonl), then this run's (run_dir/metrics.jsonl), each tagged with its run
    number; of this run's training lines every LOG_EVERY-th step is kept."""
    lines = []
    if previous is not None and previous.is_file():
        lines = [json.loads(line) for line in previous.read_text().splitlines() if line.strip()]
    run = max((line.get("run", 1) for line in lines), default=0) + 1
    for line in [] if run_dir is None else history.read(str(run_dir)):
        if line.get("split") != "train" or line["step"] % LOG_EVERY == 0:
            lines.append(dict(line, run=run))
    for line in lines:
        line.setdefault("run", 1)
    return lines


def run_summaries(lines, known=()):
    """Per run: its steps and its wall-clock hours, from the log's timestamps or, for runs
    logged before lines had them, from `known` (the shipped meta's training_runs)."""
    known_hours = {row["run"]: row.get("hours") for row in known}
    runs = {}
    for line in lines:
        runs.setdefault(line["run"], []).append(line)
    summaries = []
    for run, rows in sorted(runs.items()):
        times = [row["time"] for row in rows if "time" in row]
        hours = round((max(times) - min(times)) / 3600, 2) if times else known_hours.get(run)
        summaries.append({"run": run, "steps": max(row["step"] for row in rows), "hours": hours})
    return summaries


def validation_photos(folder, limit):
    """Up to `limit` photos of `folder` (recursive), taken evenly over the sorted list, as
    (paths, RGB arrays)."""
    from koala import image_io  # noqa: PLC0415
    from koala.data import sources  # noqa: PLC0415

    paths = sources.folder_source(folder).paths
    if not paths:
        raise FileNotFoundError(f"{folder}: no photos")
    used = paths[::max(1, len(paths) // limit)][:limit]
    return used, [image_io.read_image(path) for path in used]
