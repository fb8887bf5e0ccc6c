"""`koala report`: the tiny budget end to end, verdicts computed from measurements, and\nclaims that name only what their spec measures."""

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
    assert verdict.compare(alternating, alternating.claims[0])[-1] == verdict.INCONCLUSIVE

    results = markdown.results_table(higher)
    assert f"{np.mean(base):.1f}" in results and "| 40 |" in results
    headline = markdown.headline_table([higher, lower])
    assert headline.count("| agrees |") == 1 and headline.count("| disagrees |") == 1


def test_claim_on_different_images_is_refused():
    section = _section(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="different images"):
        verdict.compare(section, section.claims[0])


def test_tiny_budget_writes_every_section_with_finite_numbers(tmp_path, shared_data):
    from koala.reproduce import run

    output = tmp_path / "REPORT.md"
    sections = run.run(output, "tiny", tmp_path / "runs", shared_data)

    assert [s.key for s in sections] == list(SECTIONS)
    text = output.read_text()
    assert re.search(r"Wall time: \d+\.\d min total", text)
    for section in sections:
        assert f"## {section.key}:" in text
        assert section.claims and section.seconds > 0
        for claim in section.claims:
            assert claim.text in text
        for method, values in section.methods.items():
            for metric, per_image in values.items():
                assert len(per_image) > 0 and np.all(np.isfinite(per_image)), (method, metric)
        for _, link in section.figures:
            assert (output.parent / link).is_file(), link
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    numbers = [cell for line in tables for cell in line.split("|")
               if re.fullmatch(r"\s*-?[\d.]+(e[-+]\d+)?\s*", cell)]
    assert numbers and all(math.isfinite(float(n)) for n in numbers)
    assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)


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
