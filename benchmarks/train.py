"""Training speed on this machine: img/s of each experiment's model at 128 px through the
real loop (koala.training.loop.train, default strategy, float32), and of the input pipeline alone.

The input pipeline should deliver >= 5x the fastest step rate, so data never bounds
training. Records: ../shared/data/photos/val (800 photos) written at 128 px to a temp dir,
or --records DIR. Prints one JSON line.

--report BUDGET instead times every model of `koala report --budget BUDGET` (seed 0 of each
run, its config exactly as the report plans it, on the report's records in --workdir) with
the pipeline of the same records as the baseline: where the report's hours go.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from koala.training import config as training_config, loop  # noqa: E402
from koala.training import records as records_lib  # noqa: E402

SIZE = 128
MODELS = ["koalarization", "koalarization_lite", "effnet_head_lite", "zhang_eccv16", "iizuka",
          "cifar10_unet_regression"]


def build_records(out_dir):
    from koala.data import sources, writer

    photos = REPO.parent / "shared" / "data" / "photos" / "val"
    settings = writer.Settings(source=str(photos), size=SIZE, val_fraction=0.1)
    writer.build(sources.open_source(str(photos)), out_dir, settings)
    return out_dir


def pipeline_images_per_second(config, batches):
    dataset = iter(records_lib.make_dataset(config, "train", int(config.train.batch_size)))
    next(dataset)  # warm-up: file open, autotune
    started = time.perf_counter()
    for _ in range(batches):
        next(dataset)
    return batches * int(config.train.batch_size) / (time.perf_counter() - started)


def model_images_per_second(name, records, workdir, steps, batch_size):
    config = training_config.load_config(f"{name}:cpu")
    config.data.update(records=str(records), source="", size=SIZE, color_space="lab",
                       with_embedding=False)
    if name == "koalarization":  # no precomputed embedding here: feed zeros of its size
        config.model.kwargs.embedding_source = "none"
    config.train.update(steps=steps + 2, batch_size=batch_size)
    config.eval.update(every_steps=10_000, max_batches=1)
    config.checkpoint.every_steps = 10_000
    return trained_images_per_second(config, workdir)


def trained_images_per_second(config, workdir):
    """Median img/s of the loop's train rows, the first two (tracing) left out."""
    loop.train(config, workdir, strategy=tf.distribute.get_strategy())
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    rates = [r["img_s"] for r in map(json.loads, lines) if r["split"] == "train"][2:]
    return statistics.median(rates)


def report_rates(budget, workdir, data, steps):
    """{run: img/s} of every report run at `budget`, and the records pipeline's img/s."""
    from koala.reproduce import reproduction, runs
    from koala.reproduce.budget import BUDGETS, Context
    from koala.reproduce.run import CLAIMS

    context = Context(BUDGETS[budget], pathlib.Path(data), pathlib.Path(workdir) / budget,
                      pathlib.Path(workdir), "figures")
    rates, pipeline = {}, {}
    for spec in (claim.SPEC for claim in CLAIMS if claim.SPEC.runs):
        directory, size = runs.records(context, spec.records, spec.paper_scale,
                                       getattr(context.budget, spec.size), spec.fuses_embedding,
                                       getattr(context.budget, spec.photos))
        for run, config in reproduction.run_configs(context, spec, directory, size):
            if int(config.train.seed) or run.name in rates:
                continue
            config.train.update(steps=steps + 2, steps_per_loop=1)
            config.eval.every_steps = config.checkpoint.every_steps = 10 ** 6
            if directory.name not in pipeline:
                pipeline[directory.name] = round(pipeline_images_per_second(config, 50), 1)
            with tempfile.TemporaryDirectory() as tmp:
                rates[run.name] = round(trained_images_per_second(config, tmp), 1)
    return {"budget": budget, "train_img_s": rates, "pipeline_img_s": pipeline,
            "pipeline_over_fastest_step": round(min(pipeline.values()) / max(rates.values()), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", help="records at 128 px (default: built from photos/val)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--report", help="time the models of this report budget instead")
    parser.add_argument("--workdir", default="runs/report",
                        help="--report: the report's workdir (its records are reused)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    logging.set_verbosity(logging.WARNING)
    if args.report:
        print(json.dumps(report_rates(args.report, args.workdir, args.data, args.steps)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        records = pathlib.Path(args.records or build_records(pathlib.Path(tmp) / "records"))
        config = training_config.load_config("koalarization_lite:cpu")
        config.data.update(records=str(records), size=SIZE)
        config.train.batch_size = args.batch_size
        result = {"size": SIZE, "batch_size": args.batch_size,
                  "pipeline_img_s": round(pipeline_images_per_second(config, 50), 1),
                  "train_img_s": {}}
        for name in args.models.split(","):
            result["train_img_s"][name] = round(model_images_per_second(
                name, records, pathlib.Path(tmp) / name, args.steps, args.batch_size), 1)
        fastest = max(result["train_img_s"].values())
        result["pipeline_over_fastest_step"] = round(result["pipeline_img_s"] / fastest, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
