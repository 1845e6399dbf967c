# Two commands do all the set-up on a fresh machine (Python >= 3.11 required):
#   make demo   creates .venv, installs simsub, writes the comparison report of the default scenario
#   make test   creates .venv, installs simsub with test tools (and, as root on Debian, Postfix,
#               pflogsumm and postfwd for the tests against real programs: make tools), runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all bench reference tools postfix pflogsumm postfwd api-docs clean

# The install compiles the hot modules with mypyc (hatch_build.py; pure Python if that
# fails); the last line says which build was installed.  It runs again when a compiled
# module's source changes (the list is read from pyproject.toml, where it is kept), so
# `make test` never tests a stale compiled build.
COMPILED := $(shell $(PYTHON) -c 'import glob, tomllib; c = tomllib.load(open("pyproject.toml", "rb"))["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["compile"]; print(*sorted({p for g in c for p in glob.glob(g)}))' 2>/dev/null)
$(STAMP): pyproject.toml hatch_build.py $(COMPILED)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/simsub --version
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/simsub compare

test: $(STAMP) tools
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -m 'slow or not slow'

# The committed reference comparison report of the default scenario (results/reference/);
# a slow test checks the current code still produces its runs.
reference: $(STAMP)
	$(BIN)/simsub compare --out results/reference/may-2012-compare --cache results/.simsub-runs

# Debian's Postfix for `simsub twin`, `export-postfix --check` and the tests marked postfix.
# "No configuration": the package starts nothing and leaves the system's mail alone; simsub
# runs its own private instances on loopback.  Without root or apt-get it only says so,
# and those tests are skipped with that reason.
postfix:
	@if command -v postfix >/dev/null && [ -e /usr/lib/postfix/postfix-pcre.so ]; then :; \
	elif [ -e /usr/sbin/sendmail ] && ! command -v postfix >/dev/null; then \
	  echo "note: another mail server is installed (/usr/sbin/sendmail); not replacing it with Postfix:"; \
	  echo "      the tests against a real Postfix will be skipped"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's postfix and postfix-pcre (No configuration) for the Postfix tests"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix postfix-pcre >/dev/null \
	  || { apt-get update -q >/dev/null && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix postfix-pcre >/dev/null; }; \
	else \
	  echo "note: Postfix is not installed and this is not root with apt-get: the tests against a real"; \
	  echo "      Postfix will be skipped (as root: apt-get install postfix postfix-pcre; see README)"; \
	fi

# Every outside program the tests use against the real thing: Postfix, pflogsumm (reads a
# run's maillog), postfwd (the peer of simsub policyd).  Debian packages, as root only.
tools: postfix pflogsumm postfwd

# The API reference for people who script simsub (notebooks), from the docstrings:
# results/api/index.html.
API_MODULES := simsub simsub.scenario simsub.workload simsub.analysis simsub.experiments simsub.report
api-docs: $(STAMP)
	SIMSUB_PURE_PYTHON=1 $(BIN)/python -m pdoc --docformat restructuredtext -o results/api $(API_MODULES)
	@echo "API reference: results/api/index.html"

# Install a Debian package for the tests that use it, as root with apt-get only; elsewhere
# say so (those tests are then skipped with the reason).  $(1): the shell test that it is
# there, $(2): the package, $(3): what needs it.
define apt_tool
	@if $(1); then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's $(2) for $(3)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) >/dev/null; }; \
	else \
	  echo "note: $(2) is not installed and this is not root with apt-get: $(3) will be skipped"; \
	  echo "      (as root: apt-get install $(2))"; \
	fi
endef

# Debian's pflogsumm, the Postfix log summariser, reads the maillog of a simulated run.
pflogsumm:
	$(call apt_tool,command -v pflogsumm >/dev/null,pflogsumm,the test that reads a run's maillog with it)

# Debian's postfwd, the peer simsub policyd is compared with (tests/test_policyd_postfwd.py and
# python -m benchmarks.policyd).  The package starts nothing (STARTUP=0 in /etc/default/postfwd);
# the tests run private instances on loopback.
postfwd:
	$(call apt_tool,[ -x /usr/sbin/postfwd2 ],postfwd,the comparison with postfwd)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache simsub/_compiled.json simsub__mypyc.*.so simsub/*.so simsub/*/*.so
