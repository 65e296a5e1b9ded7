# Two commands do all the set-up on a fresh machine:
#   make demo   build .venv (CPU torch via constraints.txt), encode + decode the bundled sample
#   make test   build .venv the same way and run the test suite, then check a plain install
# .venv has every extra: torch, train, test, peers (jpegli), bench (OpenCV, scipy, matplotlib), dask.
# make test also builds .venv-plain with `pip install .` alone (ONNX Runtime, no torch) and runs
# tests/plain_install.py there: what a user of `pip install jpegplus` gets.
VENV ?= .venv
PY := $(VENV)/bin/python
PLAIN ?= .venv-plain

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[torch,train,test,peers,bench,dask]"
	touch $@

$(PLAIN)/.installed: pyproject.toml
	python3 -m venv $(PLAIN)
	rm -rf build  # setuptools' build/lib keeps files deleted since: they would ship in the wheel
	$(PLAIN)/bin/python -m pip install -q .
	touch $@

.PHONY: demo test test-plain
demo: $(VENV)/.installed
	$(PY) -m jpegplus demo

test: $(VENV)/.installed
	$(PY) -m pytest -q
	$(MAKE) test-plain

# The installed package (not this checkout) at this checkout's state: reinstalled without deps each run.
test-plain: $(PLAIN)/.installed
	rm -rf build
	$(PLAIN)/bin/python -m pip install -q --no-deps --force-reinstall .
	cd tests && ../$(PLAIN)/bin/python plain_install.py
