# Everything a fresh machine needs: Python 3 and make. Targets build the venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
# The oldest botocore we claim (pyproject: botocore>=1.31): the credential chain is all we use.
OLDEST_BOTOCORE := 1.31.0
OLD_VENV := .venv-oldest
OLD_PY   := $(OLD_VENV)/bin/python

.PHONY: test test-oldest test-py310 lint format format-check demo dist bench bench-notify clean

# Branch coverage of the whole suite; the floor is the figure when it was set, rounded down:
# raise it as coverage grows, never lower it to let a change through.
COV_FLOOR := 87

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the project's metadata changes (pip >= 25.1 knows dependency groups).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e . --group dev
	touch $@

# The demo needs only the package and its `local` extra (moto's S3), not the dev tools.
$(VENV)/.installed-local: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[local]'
	touch $@

demo: $(VENV)/.installed-local
	$(PY) -m sagemaker_async demo

# coverage starts before pytest, so the modules our pytest11 plugin imports while pytest
# loads its plugins are measured too (pytest-cov would start after them).
test: $(STAMP)
	$(PY) -m coverage erase
	$(PY) -m coverage run -m pytest -q
	$(PY) -m coverage report --fail-under=$(COV_FLOOR)

# The parts that touch botocore at run time (credentials), against the oldest botocore we
# claim; the wire tests need the newest model, which has the inline Body.
test-oldest:
	test -x $(OLD_PY) || ($(PYTHON) -m venv $(OLD_VENV) && $(OLD_PY) -m pip install -q --upgrade pip)
	$(OLD_PY) -m pip install -q -e . "botocore==$(OLDEST_BOTOCORE)" pytest pytest-asyncio respx hypothesis
	$(OLD_PY) -m pytest -q -p no:cacheprovider tests/test_credentials.py tests/test_client.py

# The oldest Python we claim (requires-python >= 3.10), where the machine has it.
PY310_VENV := .venv-py310
PYTHON310  ?= python3.10
test-py310:
	test -x $(PY310_VENV)/bin/python || ($(PYTHON310) -m venv $(PY310_VENV) && $(PY310_VENV)/bin/python -m pip install -q --upgrade pip)
	$(PY310_VENV)/bin/python -m pip install -q -e . --group test
	$(PY310_VENV)/bin/python -m pytest -q -p no:cacheprovider

# ruff (lint and format), mypy (src, bench and scripts strictly, tests with relaxed
# overrides: pyproject) and the import contract of the layers (scripts/check_layers.py).
# `make format` fixes the format.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy --strict
	$(PY) scripts/check_layers.py src/sagemaker_async

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench scripts

format-check: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench scripts

# The sdist and the wheel, checked as PyPI checks them (twine: metadata, the description
# renders), and the license inside the wheel.
# In a venv of its own: twine's readme-renderer and the AWS CLI of the test group want
# different docutils.
DIST_VENV := .venv-dist
dist:
	test -x $(DIST_VENV)/bin/python || ($(PYTHON) -m venv $(DIST_VENV) && $(DIST_VENV)/bin/python -m pip install -q --upgrade pip)
	$(DIST_VENV)/bin/python -m pip install -q --group release
	rm -rf dist
	$(DIST_VENV)/bin/python -m build --outdir dist .
	$(DIST_VENV)/bin/python -m twine check --strict dist/*
	$(DIST_VENV)/bin/python -m zipfile -l dist/*.whl | grep -q 'dist-info/licenses/LICENSE'
	tar -tzf dist/*.tar.gz | grep -q '^[^/]*/LICENSE$$'

# Against aiobotocore, boto3 and a raw-asyncio client, in a venv of its own (aiobotocore pins
# botocore narrowly). `make bench BENCH_ARGS=--quick` for a one-minute indicative run.
bench:
	PYTHON=$(PYTHON) bash bench/setup_venv.sh
	bench/.venv/bin/python -m bench.run $(BENCH_ARGS)

# Waiting on results, S3 polling against SNS -> SQS notifications, on the local endpoint
# (10,000 invocations, outputs over 60 s). Needs only the `local` extra.
# `make bench-notify BENCH_ARGS="--invocations 200 --spread 3"` for a smoke run.
bench-notify: $(VENV)/.installed-local
	$(PY) -m bench.notify $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OLD_VENV) $(PY310_VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov dist $(DIST_VENV)
