# The two quick-start commands. Each installs what it needs on a fresh machine first:
# a pinned uv in .tools/, then the exact versions in uv.lock into .venv/.
PYTHON ?= python3.11
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
# uv must use the machine's interpreter, never download one.
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test install clean repro

demo: install          ## run the whole platform end to end on a simulated portfolio
	$(VENV)/bin/tradecredit demo

test: install          ## run the whole test suite (installs the Debian servers the tests start)
	.ci/system-packages
	$(VENV)/bin/pytest -n auto --dist loadgroup

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set (as on our CI), Python
# would otherwise compile every imported module from source in every process, 6-7 s per command.
$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode --python $(PYTHON)
	touch $@

clean:
	rm -rf .tools $(VENV) workspace

repro: install         ## reproduce the dvc.yaml pipeline
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro
