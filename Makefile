# Byline's task runner. `make demo` sets up and runs the main job; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch. On this project's machines `torch==2.13.0` is a CPU wheel on local disk; elsewhere run
# `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` (a bare `pip install torch` pulls CUDA, GBs).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_QUESTION ?= Why did Jack Dorsey call Ilhan Omar?

.PHONY: install demo test lint eval bench clean

# pip -qq: errors only (a single -q still prints setuptools' editable-install banner and index warnings).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade "pip>=25.1"
	$(BIN)/pip install -qq "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -qq -e ".[openai,anthropic,ollama]" --group dev
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/byline ingest seeds/
	$(BIN)/byline ask "$(DEMO_QUESTION)"
	$(BIN)/byline ask "Who won the 2018 FIFA World Cup?"
	@$(BIN)/byline stats | sed -n 's/^home: /\nThe index is in /p'
	@echo 'Go on:  source $(VENV)/bin/activate; byline ask "your question"   (byline --help lists every command)'


# The eval gate on the project's own question set (fails when a metric drops more than the tolerance), then pytest.
test: install
	$(BIN)/byline eval evals/data/seeds.jsonl --articles seeds/ --baseline evals/baselines/seeds.json --tolerance 0.035
	$(BIN)/python -m pytest

eval: install
	$(BIN)/byline eval evals/data/seeds.jsonl --articles seeds/ --report reports/eval-seeds --json reports/eval-seeds.json

bench: install
	$(BIN)/byline bench --out reports/bench --data ../shared/data

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot ingest evals prompts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
