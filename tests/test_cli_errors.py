"""`koala VERB` with a typical user mistake: one line `koala VERB: message`, exit 1, no traceback.

Every case fails before any model runs (a missing file, a bad flag value, a file that is not
an image, a missing --model bundle), so the whole file takes seconds; the cases of verbs
that do not load TensorFlow also check that stderr holds nothing but that line.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
VERBS = ("app", "client", "colorize", "evaluate", "export", "models", "records", "report",
         "study", "train")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "notes.txt").write_text("not a photo\n")
    (root / "empty").mkdir()
    return root


def koala(*args, cwd):
    env = {**os.environ, "KOALA_CACHE": str(cwd / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "koala.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


# (verb, arguments with {root} for the fixture's folder, what the line must name)
TENSORFLOW_FREE_CASES = [
    ("colorize", ["{root}/missing.jpg", "--output", "{root}/out"],
     ["{root}/missing.jpg", "no such file"]),
    ("colorize", ["{root}/empty", "--output", "{root}/out"], ["no images or videos", "empty"]),
    ("colorize", ["x.jpg", "--output", "{root}/out", "--batch_size=abc"], ["--batch_size=abc"]),
    ("colorize", ["x.jpg", "--output", "{root}/out", "--batch", "2"], ["batch_size"]),
    ("colorize", ["x.jpg", "--output", "{root}/out", "--vividness=2"], ["--vividness"]),
    ("colorize", ["x.jpg"], ["--output"]),
    ("colorize", ["{root}/notes.txt", "--output", "{root}/out", "--reference",
                  "{root}/notes.txt"], ["--reference", "notes.txt", "not an image"]),
    ("colorize", ["{root}/notes.txt", "--output", "{root}/out", "--model", "{root}/no_bundle"],
     ["{root}/no_bundle", "not a Koala model"]),
    ("client", ["--output", "{root}/out", "{root}/missing.png"], ["{root}/missing.png"]),
    ("client", ["--output", "{root}/out", "--url", "http://127.0.0.1:9", "{root}/notes.txt"],
     ["notes.txt", "not an image"]),
    ("client", ["--output", "{root}/out", "--batch_size=-"], ["--batch_size"]),
    ("app", ["--model", "{root}/no_bundle"], ["{root}/no_bundle", "not a Koala model"]),
    ("app", ["--max_pixels=0"], ["--max_pixels"]),
    # one spelling per flag: the old --max_megapixels is refused, not read (the bad model
    # makes an app that still read it fail too, on the model, not on this flag)
    ("app", ["--max_megapixels=5", "--model", "{root}/no_bundle"],
     ["Unknown command line flag 'max_megapixels'"]),
    ("study", ["results", "--db", "{root}/missing.sqlite"], ["{root}/missing.sqlite"]),
    ("study", ["serve", "--real", "{root}/missing", "--colorized", "{root}/empty"],
     ["--real", "{root}/missing"]),
    ("study", ["serve", "--real", "{root}/empty", "--colorized", "{root}/empty",
               "--db", "{root}/study.sqlite"], ["no photos", "{root}/empty"]),
    ("study", ["vote"], ["usage: koala study serve"]),
    ("report", ["--data", "{root}/missing"], ["--data", "{root}/missing"]),
    ("report", ["--data", "{root}", "--readme", "{root}/notes.txt"],
     ["--readme", "notes.txt", "no report block"]),
    ("export", ["--format", "tflite", "--parity_images", "{root}/empty"], ["--parity_images"]),
    ("export", ["--output", "{root}/export", "--quantize=int4"], ["--quantize"]),
    ("evaluate", ["--input", "{root}", "--output", "{root}/out", "--limit=some"], ["--limit"]),
    ("records", ["--input", "{root}", "--output", "{root}/rec", "--worker_index=3"],
     ["--worker_index"]),
    ("models", ["--json=maybe"], ["--json"]),
]
# These load TensorFlow before the mistake shows (its own start-up notes may precede the line).
TENSORFLOW_CASES = [
    ("train", ["--experiment", "no_such_experiment"], ["unknown experiment 'no_such_experiment'"]),
    ("records", ["--input", "{root}/missing", "--output", "{root}/rec"], ["{root}/missing"]),
    ("models", ["--model", "no_such_model"], ["unknown model no_such_model"]),
    ("export", ["--model", "{root}/no_bundle", "--output", "{root}/export"],
     ["{root}/no_bundle", "not a Koala model"]),
    ("evaluate", ["--model", "{root}/no_bundle", "--input", "{root}/missing", "--output",
                  "{root}/out"], ["{root}/no_bundle", "not a Koala model"]),
]


CASES = ([(*case, True) for case in TENSORFLOW_FREE_CASES]
         + [(*case, False) for case in TENSORFLOW_CASES])


@pytest.mark.parametrize("verb, args, needed, only_line", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_user_error_is_one_line(files, verb, args, needed, only_line):
    result = koala(verb, *(a.format(root=files) for a in args), cwd=files)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"koala {verb}:")]
    assert len(lines) == 1, result.stderr[-2000:]
    for text in needed:
        assert text.format(root=files) in lines[0], lines[0]
    if only_line:  # nothing else on stderr: no usage text, no progress bar, no log line
        assert result.stderr.splitlines() == lines, result.stderr[-2000:]


def test_unknown_verb_lists_the_verbs(files):
    result = koala("colourise", cwd=files)
    assert result.returncode == 2 and "unknown verb 'colourise'" in result.stderr
    assert all(verb in result.stderr for verb in VERBS)


@pytest.mark.parametrize("verb", VERBS)
def test_verb_loads_without_tensorflow(verb):
    """`koala VERB --help` (and LiteRT colorizing) must not pay TensorFlow's seconds."""
    script = (f"import sys; import koala.commands.{verb}; "
              "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]


@pytest.mark.parametrize("verb, flag, words", [
    ("report", "--budget", ["paper", "tiny", "koala report --budget paper"]),
    ("colorize", "--hints", ["--output"]),
])
def test_verb_help_lists_its_own_flags_and_usage(verb, flag, words, files):
    result = koala(verb, "--help", cwd=files)  # absl's --help exits with status 1
    assert flag in result.stdout and all(word in result.stdout for word in words)
    assert result.stdout.lstrip().startswith(f"`koala {verb}")  # the verb's docstring
