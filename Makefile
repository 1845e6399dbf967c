# Two commands do all the set-up on a fresh machine (Python >= 3.11 required):
#   make demo   creates .venv, installs simsub, writes the comparison report of the default scenario
#   make test   creates .venv, installs simsub with test tools (and, as root on Debian, Postfix
#               for the tests against a real one), runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-all bench reference tools postfix pflogsumm postfwd api-docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
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
	$(BIN)/python -m pdoc --docformat restructuredtext -o results/api $(API_MODULES)
	@echo "API reference: results/api/index.html"

# Debian's pflogsumm, the Postfix log summariser, for the test that reads the maillog of a
# simulated run (`simsub run --maillog`) with it.  Without root or apt-get it only says so,
# and that test is skipped with that reason.
pflogsumm:
	@if command -v pflogsumm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's pflogsumm for the maillog test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q pflogsumm >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pflogsumm >/dev/null; }; \
	else \
	  echo "note: pflogsumm is not installed and this is not root with apt-get: the maillog test that"; \
	  echo "      runs it will be skipped (as root: apt-get install pflogsumm)"; \
	fi

# Debian's postfwd, the peer `simsub policyd` is compared with (tests/test_policyd_postfwd.py and
# `python -m benchmarks.policyd`).  The package starts nothing (STARTUP=0 in /etc/default/postfwd);
# the tests run private instances on loopback.  Without root or apt-get it only says so.
postfwd:
	@if [ -x /usr/sbin/postfwd2 ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's postfwd for the policyd comparison tests"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfwd >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfwd >/dev/null; }; \
	else \
	  echo "note: postfwd is not installed and this is not root with apt-get: the comparison with postfwd"; \
	  echo "      will be skipped (as root: apt-get install postfwd)"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
