# Koala verbs. Every target creates .venv and installs the package on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared
DATASET ?= $(SHARED)/data/photos/train
RECORDS ?= records/default
MODEL ?= koalarization_lite
WORKDIR ?= runs/$(MODEL)
INPUT ?= $(SHARED)/data/historical
OUT ?= out
SIZE ?= 224
PYTEST_ARGS ?=

.PHONY: install demo test test-slow records train evaluate export colorize bench report default-model study clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,study]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m koala.demo --output demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

records: $(STAMP)
	$(BIN)/koala records --input $(DATASET) --output $(RECORDS) --size $(SIZE)

train: $(STAMP)
	$(BIN)/koala train --experiment $(MODEL) --workdir $(WORKDIR)

evaluate: $(STAMP)
	$(BIN)/koala evaluate --model default --input $(SHARED)/data/benchmark --output $(OUT)/evaluate --train_stats $(SHARED)/data/photos/train

colorize: $(STAMP)
	$(BIN)/koala colorize $(INPUT) --output $(OUT)/colorized

export: $(STAMP)
	$(BIN)/koala export --model default --output export/koala --tflite --quantize dynamic

bench: $(STAMP)
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

report: $(STAMP)
	$(BIN)/koala report --output experiments/REPORT.md --data $(SHARED)/data

default-model: $(STAMP)
	$(BIN)/python data_prep/train_default_model.py --data $(SHARED)/data --workdir runs/default --finetune
	$(BIN)/python data_prep/select_default_model.py --workdir runs/default --data $(SHARED)/data --ship

study: $(STAMP)
	$(BIN)/koala study serve --real $(SHARED)/data/benchmark/kodak24 --colorized $(OUT)/study_colorized --model default

clean:
	rm -rf $(VENV) build *.egg-info
