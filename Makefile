# xdt — `make demo` runs the main job end to end; `make test` installs everything and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xdt-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help install demo test test-fast bench lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,text]'
	# keras-hub without its tensorflow-text requirement (which would install full tensorflow beside tensorflow-cpu):
	# the text-encoder tests load tiny Hugging Face folders through it.
	$(BIN)/python -m pip install --quiet --no-deps 'keras-hub>=0.32,<0.33'
	$(BIN)/python -m pip install --quiet regex sentencepiece tokenizers absl-py kagglehub 'kagglesdk==0.1.28'
	touch $(STAMP)

install: $(STAMP) ## Create .venv (if missing) and install xdt with test extras

demo: install ## Run the whole pipeline on the embedded synthetic data (configs/quickstart.yaml)
	$(BIN)/xdt run configs/quickstart.yaml

test: install ## Run every test, slow end-to-end ones included
	$(BIN)/python -m pytest -q

test-fast: install ## Run the tests not marked slow
	$(BIN)/python -m pytest -q -m "not slow"

bench: install ## Benchmarks on ../shared/data and synthetic scale data (tables on stdout, JSON in bench/results/)
	mkdir -p bench/results
	$(BIN)/python bench/data_report.py --json bench/results/data_report.json
	$(BIN)/python bench/eval_speed.py
	$(BIN)/python bench/prepare_scale.py
	$(BIN)/python bench/sequence_scale.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/douban_rating.py
	$(BIN)/python bench/sequential_quality.py --parts b,c  # part a runs inside quality.py, next to the id-based methods

lint: install ## Static checks (ruff)
	$(BIN)/python -m pip install --quiet 'ruff>=0.6'
	$(BIN)/ruff check xdt tests bench

clean: ## Remove prepared data, runs and caches (keeps .venv)
	rm -rf data/*/ runs/*/ bench/results .pytest_cache
