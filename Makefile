# MiniTwit: `make run` serves it locally, `make test` runs every test.

PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
PYTEST_ARGS ?= tests

# Go builds the local FerretDB; its usual install lives outside some PATHs.
GO := $(shell command -v go 2>/dev/null || \
	{ test -x /usr/local/go/bin/go && echo /usr/local/go/bin/go; })

# Debian packages the tests need; `system-deps` installs the missing ones.
# chromium runs the browser tests, openssh-server stands in for a droplet,
# systemd brings systemd-analyze to check the unit file.
SYSTEM_PACKAGES := chromium openssh-server systemd
ifeq ($(GO),)
# TODO: Debian's golang-go is older than the Go 1.24 that FerretDB 1.24
# needs, so this only helps once Debian ships a newer one.
SYSTEM_PACKAGES += golang-go
endif

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup system-deps ferretdb run test clean

setup: system-deps $(VENV_STAMP) ferretdb

# NOTE: the status, not dpkg -s alone: a removed package whose config files
# remain still answers dpkg -s, though its programs are gone.
system-deps:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "Installing system packages:" $$missing; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive \
			$(SUDO) apt-get install -y -q $$missing; \
	fi

$(VENV_STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -q --disable-pip-version-check \
		-r requirements-dev.txt
	touch $@

ferretdb: $(VENV_STAMP)
	GO="$(GO)" $(VENV_PYTHON) localdb.py build

run: setup
	$(VENV_PYTHON) serve.py

# The Go tests reuse what building FerretDB compiled, so they cost seconds.
# pytest exits 5 when it collects nothing; say so loudly rather than fail.
test: setup
	cd ferretdb && $(or $(GO),go) test ./...
	@$(VENV_PYTHON) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "WARNING: pytest collected no tests"; exit 0; \
	fi; \
	exit $$status

clean:
	rm -rf $(VENV) build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
