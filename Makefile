# Two commands do all the set-up on a fresh machine:
#   make demo   build .venv (CPU torch via constraints.txt), encode + decode the bundled sample
#   make test   build .venv the same way and run the test suite
# Both install every extra: test, peers (jpegli) and bench (the benchmark's OpenCV, scipy, matplotlib).
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,peers,bench]"
	touch $@

.PHONY: demo test
demo: $(VENV)/.installed
	$(PY) -m jpegplus demo

test: $(VENV)/.installed
	$(PY) -m pytest -q
