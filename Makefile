# Everything a fresh machine needs: Python 3 and make. Targets build the venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
# The oldest botocore we claim (pyproject: botocore>=1.31): the credential chain is all we use.
OLDEST_BOTOCORE := 1.31.0
OLD_VENV := .venv-oldest
OLD_PY   := $(OLD_VENV)/bin/python

.PHONY: test test-oldest lint demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall when the project's metadata changes (pip >= 25.1 knows dependency groups).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e . --group dev
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

# The parts that touch botocore at run time (credentials), against the oldest botocore we
# claim; the wire tests need the newest model, which has the inline Body.
test-oldest:
	test -x $(OLD_PY) || ($(PYTHON) -m venv $(OLD_VENV) && $(OLD_PY) -m pip install -q --upgrade pip)
	$(OLD_PY) -m pip install -q -e . "botocore==$(OLDEST_BOTOCORE)" pytest pytest-asyncio respx hypothesis
	$(OLD_PY) -m pytest -q -p no:cacheprovider tests/test_credentials.py tests/test_client.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy --strict

clean:
	rm -rf $(VENV) $(OLD_VENV) .pytest_cache .mypy_cache .ruff_cache
