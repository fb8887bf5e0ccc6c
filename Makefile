# Koala verbs. Every target creates .venv and installs the package on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
# make records MODEL=NAME && make train MODEL=NAME[:VARIANT]: the records the experiment
# declares (size, embedding backbone and weights), then training. DATASET= photo folder
# (default: the experiment's own, ../shared/data/photos/train for the photo experiments);
# WEIGHTS= a local backbone weights file (e.g. Inception-ResNet-v2's .h5 when offline).
MODEL ?= koalarization_lite
DATASET ?=
WEIGHTS ?=
WORKDIR ?= runs/$(subst :,-,$(MODEL))
EXPERIMENT_ARGS = $(if $(DATASET),--config.data.source=$(DATASET)) $(if $(WEIGHTS),--config.model.kwargs.weights=$(WEIGHTS))
INPUT ?= $(SHARED)/data/historical
OUT ?= out
PYTEST_ARGS ?=

.PHONY: install demo test test-slow records train evaluate export colorize bench report default-model app study clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,study,beam]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m koala.demo --output demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

records: $(STAMP)
	$(BIN)/koala train --experiment $(MODEL) --records_only $(EXPERIMENT_ARGS)

train: $(STAMP)
	$(BIN)/koala train --experiment $(MODEL) --workdir $(WORKDIR) $(EXPERIMENT_ARGS)

evaluate: $(STAMP)
	$(BIN)/koala evaluate --model default --input $(SHARED)/data/benchmark --output $(OUT)/evaluate --train_stats $(SHARED)/data/photos/train

colorize: $(STAMP)
	$(BIN)/koala colorize $(INPUT) --output $(OUT)/colorized

export: $(STAMP)
	$(BIN)/koala export --model default --output export/koala --format saved_model,tflite --quantize dynamic

bench: $(STAMP)
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

report: $(STAMP)
	$(BIN)/koala report --output experiments/REPORT.md --readme README.md --data $(SHARED)/data

# The default model is an experiment like any other; rerunning resumes from runs/default.
# DEFAULT_VARIANT=continue, unfrozen, hints or hints_propagation (the runs that made v2 to v5),
# rebalanced, deeper, crop192, features, deeper192 (measured, not shipped: MODEL_CARD.md),
# lite2 (not measured), or
# DEFAULT_ARGS=--config.model.init=default continue from the shipped bundle with a fresh
# optimizer; `koala ship` then keeps its training log (it reads the run's config.json), and
# selects on the run's own validation photos with the prior of its training photos.
# SELECT_ARGS: flags of `koala ship` (e.g. --limit 200 --sizes 192).
DEFAULT_VARIANT ?=
DEFAULT_ARGS ?=
default-model: $(STAMP)
	$(BIN)/koala train --experiment default$(if $(DEFAULT_VARIANT),:$(DEFAULT_VARIANT)) \
		--workdir runs/default $(DEFAULT_ARGS)
	$(BIN)/koala ship --model runs/default --figure docs/vividness.png $(SELECT_ARGS)

app: $(STAMP)
	$(BIN)/koala app --model default

study: $(STAMP)
	$(BIN)/koala study serve --real $(SHARED)/data/benchmark/kodak24 --colorized $(OUT)/study_colorized --model default

clean:
	rm -rf $(VENV) build *.egg-info
