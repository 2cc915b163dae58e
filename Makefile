# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv on first use.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test proto lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CPU build of torch from the machine's local file; a plain `torch` requirement pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidaio-mesh demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	cd proto && ../$(VENV)/bin/buf lint

clean:
	rm -rf $(VENV) .pytest_cache
