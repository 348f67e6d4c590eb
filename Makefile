# Two commands for a newcomer: `make run` (serve on SQLite) and `make test` (lint + suite on SQLite and PostgreSQL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=
PHP ?= php

.PHONY: run test test-sqlite test-postgres test-real-store lint php-lint audit pip-audit bank bench clean

# A new top-level package (e.g. simulator/) needs the editable install redone, hence the __init__ files.
$(BIN)/.installed: pyproject.toml $(wildcard */__init__.py)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== installing Wallet Bridge and its dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	@# The simulators (simulator/, the demo's shops) are not in the installed package; the checkout is on the venv's path.
	$(BIN)/python -c 'import site, sys; open(site.getsitepackages()[0] + "/wallet_bridge_dev.pth", "w").write(sys.argv[1])' "$(CURDIR)"
	@echo "== installed"
	touch $@

# gunicorn, with the outbox worker in the same process on SQLite (see bridge/surfaces/serving.py).
run: $(BIN)/.installed
	$(BIN)/wallet-bridge serve

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# `php -l` over every PHP file of the WooCommerce plugin. Without php it is skipped with one line, except under
# CI=true (where .ci/run has PHP installed by the real-store kit), where it is a failure. PHP=… names another php.
php-lint:
	@if command -v $(PHP) >/dev/null 2>&1; then \
		files="$$(find deploy/woocommerce-plugin -name '*.php')"; \
		for file in $$files; do out="$$($(PHP) -l "$$file" 2>&1)" || { echo "$$out"; exit 1; }; done; \
		echo "== php -l: $$(echo "$$files" | wc -l) plugin files, no syntax errors"; \
	elif [ "$$CI" = "true" ]; then \
		echo "php is required in CI for php -l over deploy/woocommerce-plugin"; exit 1; \
	else \
		echo "== php not installed: skipped php -l over deploy/woocommerce-plugin"; \
	fi

# bandit, medium severity and above, over the shipped code (a `# nosec` only on a false positive, with why).
audit: $(BIN)/.installed
	$(BIN)/bandit -q -r bridge webhooks sync -ll

# Known vulnerabilities in the installed dependencies. It needs pypi.org's JSON API (or api.osv.dev); this
# project's CI machine reaches neither (only a package mirror), so it is not part of `make test`: --strict
# fails loudly where the data cannot be fetched instead of passing without having audited anything.
pip-audit: $(BIN)/.installed
	$(BIN)/pip-audit --strict --skip-editable --progress-spinner off

# The passes run side by side, each in its own process with its own databases (PostgreSQL's are named per process);
# each pass's output shows when it ends. The database-free tests (-m database_free: tests/unit and a few modules
# that say so) are the same on either backend, so only the SQLite pass runs them. The real-store tests run on
# PostgreSQL in a pass of their own, beside the rest: mostly waiting on PHP, they fill the core the SQLite pass frees.
test: lint php-lint audit
	@echo "== the suite on SQLite and, side by side, on PostgreSQL (each pass's output shows when it ends)"
	@$(MAKE) --no-print-directory -j3 --output-sync=target test-sqlite test-postgres test-real-store

test-sqlite: $(BIN)/.installed
	@echo "== the suite on SQLite"
	env -u TEST_DATABASE_URL $(BIN)/pytest -m "not postgres_only and not bank and not real_store" $(PYTEST_ARGS)

test-postgres: $(BIN)/.installed
	@$(call on_postgres,the same suite on PostgreSQL (less the database-free and the real-store tests),not database_free and not real_store)

# Two stores and two bridges, a file's tests on one of them (pytest-xdist): the tests wait on PHP and on webhooks
# more than they compute, so two side by side take little more than half the time of one.
test-real-store: $(BIN)/.installed
	@$(call on_postgres,the tests against a real WooCommerce store (../shared/realstore) on PostgreSQL,real_store,-n 2 --dist loadfile)

# $(call on_postgres,what,markers[,options]): pytest -m markers on TEST_DATABASE_URL; without a reachable PostgreSQL
# skipped with a message, except under CI=true, where it is a failure.
define on_postgres
if $(BIN)/python tests/pg_reachable.py "$(TEST_DATABASE_URL)"; then \
	echo "== $(1)"; \
	echo "TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -m '$(2)' $(3) $(PYTEST_ARGS)"; \
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(BIN)/pytest -m "$(2)" $(3) $(PYTEST_ARGS); \
elif [ "$$CI" = "true" ]; then \
	echo "PostgreSQL is required in CI (TEST_DATABASE_URL=$(TEST_DATABASE_URL))"; exit 1; \
else \
	echo "== PostgreSQL not reachable: skipped $(1) (set TEST_DATABASE_URL)"; \
fi
endef

# The small bank test alone (real gunicorn + workers under SIGKILLs, an outage, a dropped connection); it also
# runs in `make test`'s PostgreSQL pass.
bank: $(BIN)/.installed
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" $(BIN)/pytest -m bank tests/e2e/reliability $(PYTEST_ARGS)

bench: $(BIN)/.installed
	$(BIN)/python bench/ledger.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
