"""`koala report`: the tiny budget end to end, verdicts computed from measurements over
seeds and images, runs that resume, and claims that name only what their spec measures."""

import json
import math
import re

import numpy as np
import pytest

from koala.reproduce import markdown, verdict

SECTIONS = ("004", "000", "002", "001", "003")  # run.CLAIMS order


def _section(first, second, metric="colorfulness"):
    return verdict.Section("000", "test", "- setup", {
        "MSE": {metric: np.asarray(second, np.float64)},
        "rarity": {metric: np.asarray(first, np.float64)}},
        [verdict.Claim("rarity is more colourful", metric, "rarity", ">", "MSE")])


def test_claims_table_is_built_from_the_measured_values():
    rng = np.random.default_rng(0)
    base = rng.uniform(10, 20, 40)
    higher = _section(base + 3.0 + rng.normal(0, 0.5, 40), base)
    table = markdown.claims_table(higher)
    assert f"rarity {np.mean(higher.methods['rarity']['colorfulness']):.1f}" in table
    assert f"MSE {np.mean(base):.1f}" in table
    assert "**agrees**" in table

    lower = _section(base - 3.0, base)  # same claim, measurements reversed
    assert "**disagrees**" in markdown.claims_table(lower)
    alternating = _section(base + np.tile([1.0, -1.0], 20), base)  # mean difference 0
    assert verdict.compare(alternating, alternating.claims[0]).verdict == verdict.INCONCLUSIVE

    results = markdown.results_table(higher)
    assert f"{np.mean(base):.1f}" in results and "| 1 × 40 |" in results
    headline = markdown.headline_table([higher, lower])
    assert headline.count("| agrees |") == 1 and headline.count("| disagrees |") == 1


def test_verdict_needs_every_seed_and_counts_the_seed_spread():
    rng = np.random.default_rng(1)
    base = rng.uniform(10, 20, 200)
    shift = rng.normal(0, 0.2, 200)

    def seeds(*offsets):
        return np.stack([base + shift + offset for offset in offsets])

    agreeing = _section(seeds(1.0, 1.2, 0.9), base)
    result = verdict.compare(agreeing, agreeing.claims[0])
    assert result.verdict == verdict.AGREES and result.seeds_with_sign == 3
    assert result.seed_means == pytest.approx([1.0, 1.2, 0.9], abs=0.05)

    # the same mean difference, one seed the other way: images alone would call it
    one_against = _section(seeds(1.8, 1.5, -0.2), base)
    result = verdict.compare(one_against, one_against.claims[0])
    assert result.mean > 2 * 0.2 / np.sqrt(200) * 2  # far beyond the image noise alone
    assert result.seeds_with_sign == 2 and result.verdict == verdict.INCONCLUSIVE

    # every seed positive but they scatter widely: the seed spread enters the error
    scattered = _section(seeds(0.05, 2.0, 0.1), base)
    result = verdict.compare(scattered, scattered.claims[0])
    image_only = 0.2 / np.sqrt(200)
    assert result.standard_error > 5 * image_only
    assert result.verdict == verdict.INCONCLUSIVE
    assert "2/3" in markdown.claims_table(one_against)


def test_margins_rank_models_not_the_baseline_or_an_oracle_bound():
    rng = np.random.default_rng(2)
    gray = rng.uniform(20, 26, 50)
    section = verdict.Section("003", "test", "- setup", {
        "gray": {"psnr": gray[None]},
        "model": {"psnr": np.stack([gray + 0.6 + rng.normal(0, 0.1, 50) for _ in range(3)])},
        "true photo": {"psnr": np.stack([gray + 9.0] * 3)}}, [], baseline="gray",
        bounds=("true photo",))
    method, result = markdown.best_over_baseline(section)
    assert method == "model" and result.mean == pytest.approx(0.6, abs=0.05)
    assert "| 003 | model |" in markdown.margins_table([section])


def test_claim_on_different_images_is_refused():
    section = _section(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="different images"):
        verdict.compare(section, section.claims[0])


def test_tiny_budget_writes_every_section_with_finite_numbers(tmp_path, shared_data):
    from koala.reproduce import run

    output, readme = tmp_path / "REPORT.md", tmp_path / "README.md"
    before, after = "# Koala\n\nintro\n", "\nthe rest of the README\n"
    readme.write_text(f"{before}<!-- report:start (from REPORT.md) -->\nold figures\n"
                      f"<!-- report:end -->{after}")
    sections = run.run(output, "tiny", tmp_path / "runs", shared_data, readme=readme)

    assert [s.key for s in sections] == list(SECTIONS)
    text = output.read_text()
    assert re.search(r"Wall time: \d+\.\d min total", text)
    assert "**2 training seeds** per model" in text
    margins = text.split("Do the models learn?")[1].split("## ")[0]
    assert all(f"| {key} |" in margins for key in SECTIONS)
    for section in sections:
        assert f"## {section.key}:" in text
        assert section.claims and section.seconds > 0
        for claim in section.claims:
            assert claim.text in text
        for method, values in section.methods.items():
            for metric, measured in values.items():
                assert np.all(np.isfinite(measured)), (method, metric)
                assert measured.ndim == 2 and measured.shape[1] > 0, (method, metric)
                trained = method not in (section.baseline, "truth")
                assert measured.shape[0] == (2 if trained else 1), (section.key, method)
        for _, link in section.figures:
            assert (output.parent / link).is_file(), link
        if section.key != "003":  # it trains nothing
            assert any("learning_curves" in link for _, link in section.figures)
    for section, held_out in zip(sections[:4], (  # runs.held_out; 001's carry the embedding
            "cifar10_test_6x32", "photos_val_6x32", "photos_val_6x32",
            "photos_val_6x32_efficientnet_lite0_224")):
        images = section.methods[section.baseline]["psnr"].shape[1]
        assert f"Measured on `{held_out}`: {images} held-out images" in section.setup
    _assert_001_fuses_the_embedding_of_the_photo_at_224_px(tmp_path / "runs", shared_data)
    from koala.evaluation import judge  # the classifier 001's top-1 agreement really used
    assert f"`{judge.CLASSIFIER}` at {judge.CLASSIFIER_SIZE} px" in sections[3].setup
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    numbers = [cell for line in tables for cell in line.split("|")
               if re.fullmatch(r"\s*-?[\d.]+(e[-+]\d+)?\s*", cell)]
    assert numbers and all(math.isfinite(float(n)) for n in numbers)
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
    # the README's block now shows this report: its date, verdicts and tables, nothing else
    shown = readme.read_text()
    assert shown.startswith(before) and shown.endswith(f"<!-- report:end -->{after}")
    assert "old figures" not in shown
    date = re.search(r"on (\d{4}-\d\d-\d\d) ", text).group(1)
    assert f"`koala report --budget tiny` of {date}: 2 training seeds" in shown
    assert re.search(r"Verdicts: .*at this budget\.", text).group(0) in shown
    assert text.split("## Headline")[1].split("Do the models learn?")[0].strip() in shown
    assert text.split("Do the models learn?")[1].split("## ")[0].split(":", 1)[1].strip() in shown


def test_every_claim_compares_methods_its_spec_measures():
    from koala.reproduce import run

    specs = [claim.SPEC for claim in run.CLAIMS]
    assert [spec.seed for spec in specs] == list(SECTIONS)
    names = [r.name for spec in specs for r in spec.runs]
    assert len(names) == len(set(names)), "two claims would share a training run folder"
    for module, spec in zip(run.CLAIMS, specs):
        sweep = spec.sweep.methods if spec.sweep else ()
        measured = ({spec.baseline, *spec.methods, *sweep} if spec.runs
                    else set(module.REFERENCES))  # 003 trains nothing
        for claim in spec.claims:
            assert {claim.first, claim.second} <= measured, (spec.seed, claim.text)
            assert claim.metric in markdown.METRIC_LABELS, (spec.seed, claim.metric)


def _assert_001_fuses_the_embedding_of_the_photo_at_224_px(workdir, shared_data):
    """001's records (its own photo count) carry Lite0's embedding of the photo at 224 px,
    and its fusion model is measured on those, as it trained, not through the bundle's
    backbone, which would embed the small record blown up."""
    from koala.reproduce import reproduction, runs
    from koala.reproduce.budget import BUDGETS, Context
    from koala.reproduce.claims import global_embedding
    from koala.training import records

    context = Context(BUDGETS["tiny"], shared_data, workdir.resolve() / "tiny", workdir, "")
    directory = context.workdir / "records" / "photos_24x32_efficientnet_lite0_224"
    assert records.manifest(str(directory))["settings"]["embedding_size"] == 224
    run, config = reproduction.run_configs(context, global_embedding.SPEC, directory, 32)[0]
    assert run == global_embedding.FUSION and config.data.records == str(directory)
    measured = runs.train_run(context, run.name, config)  # finished: what the report measured
    assert measured.reused
    assert {t.name.split(":")[0] for t in measured.model.inputs} == {"L", "embedding"}


def test_a_run_is_reused_resumed_or_retrained_as_its_folder_says(tmp_path, shared_data):
    from koala.reproduce import runs
    from koala.reproduce.budget import BUDGETS, Context

    context = Context(BUDGETS["tiny"], shared_data, tmp_path, tmp_path, "figures")
    directory, size = runs.records(context, "cifar10")
    config = runs.run_config(context, "cifar10_unet_regression", directory, size, 4, seed=1)
    first = runs.train_run(context, "run", config)
    assert not first.reused and first.workdir == tmp_path / "runs" / "run" / "seed1"
    log = (first.workdir / "metrics.jsonl").read_text()
    assert [row["step"] for row in runs.learning_curve(first.workdir)] == [2, 4]

    again = runs.train_run(context, "run", config)  # finished: loaded, not trained
    assert again.reused and context.reused_runs == 1 and again.seconds == first.seconds
    assert (again.workdir / "metrics.jsonl").read_text() == log

    # killed after its last checkpoint, before it recorded its time: it resumes there
    (first.workdir / runs.SECONDS).unlink()
    resumed = runs.train_run(context, "run", config)
    assert not resumed.reused and (resumed.workdir / runs.SECONDS).is_file()
    assert (resumed.workdir / "metrics.jsonl").read_text() == log  # no step trained twice
    assert resumed.seconds > 0.8 * first.seconds  # the killed attempt's time still counts

    changed = runs.run_config(context, "cifar10_unet_regression", directory, size, 4, seed=1,
                              changes={"optimizer.learning_rate": 0.01})
    retrained = runs.train_run(context, "run", changed)  # planned differently: afresh
    assert not retrained.reused
    assert json.loads((retrained.workdir / runs.PLANNED).read_text())["optimizer"][
        "learning_rate"] == 0.01
    assert (retrained.workdir / "metrics.jsonl").read_text() != log


def test_tables_measure_images_that_no_run_trained_on(tmp_path, shared_data):
    from koala.reproduce import runs
    from koala.reproduce.budget import BUDGETS, Context

    context = Context(BUDGETS["tiny"], shared_data, tmp_path, tmp_path, "figures")
    for which, held_folder in (("cifar10", "cifar10/test"), ("photos", "photos/val")):
        trained_on, _ = runs.records(context, which)
        held = runs.held_out(context, which)
        listing = lambda d: set((d.parent / f"{d.name}.txt").read_text().split())  # noqa: E731
        assert not listing(trained_on) & listing(held), which
        assert all(f"/{held_folder}/" in path for path in listing(held)), which
        assert 0 < runs.val_count(held) <= context.budget.eval_images
        config = runs.run_config(context, "cifar10_unet_regression", trained_on, 32, 2, 0)
        measured = runs.measured_on(config, held)
        assert measured.data.records == str(held) and config.data.records == str(trained_on)
        assert len(runs.val_images(measured, 100)[1]) == runs.val_count(held)


@pytest.mark.parametrize("claim, size, steps", [
    ("rarity_mse", "head_photo_size", "head_steps"),
    ("class_rebalancing", "zhang_photo_size", "zhang_steps")])
def test_a_comparison_trains_and_measures_at_its_own_photo_size(tmp_path, shared_data, claim,
                                                                 size, steps):
    """Sections 000 and 002 name their own size and steps (Reproduction.size/steps: 000's
    head on frozen Lite0 features and 002's nets need larger photos): their runs train on
    records at that size and are measured on held-out records at that size, while the
    budget's photo_size stays."""
    import dataclasses
    import importlib

    from koala.reproduce import reproduction, runs
    from koala.reproduce.budget import BUDGETS, Context

    spec = importlib.import_module(f"koala.reproduce.claims.{claim}").SPEC
    spec = dataclasses.replace(spec, runs=spec.runs[:1])  # one run shows it
    budget = dataclasses.replace(BUDGETS["tiny"], seeds=1, **{size: 64, steps: 3})
    context = Context(budget, shared_data, tmp_path, tmp_path, "figures")
    directory, comparison, trained = reproduction.measure_runs(context, spec)
    assert directory.name == "photos_30x64" and comparison.size == 64
    assert comparison.truth.shape[1:3] == (64, 64)
    assert comparison.truth.shape[0] == runs.val_count(runs.held_out(context, "photos", 64))
    for results in trained.values():
        planned = json.loads((results[0].workdir / runs.PLANNED).read_text())
        assert planned["data"]["size"] == 64 and planned["train"]["steps"] == 3
    assert runs.records(context, "photos")[1] == budget.photo_size == 32


def test_readme_shows_the_committed_report():
    """README's report block (written by `make report`) must not drift from REPORT.md."""
    import pathlib

    from koala.reproduce import readme

    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "README.md").read_text()
    start, end = readme.block_span(text, "README.md")
    block, report = text[start:end], (root / "experiments" / "REPORT.md").read_text()
    date = re.search(r"on (\d{4}-\d\d-\d\d) ", report).group(1)
    assert re.search(rf"`koala report --budget cpu` of {date}: ", block)
    assert re.search(r"Verdicts: .*at this budget\.", report).group(0) in block
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    assert len(rows) > 10 and all(row in report for row in rows)
