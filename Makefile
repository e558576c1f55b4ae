# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck contracts pytest bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/tidings demo

test: install lint typecheck contracts pytest

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy

contracts:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

# Every benchmark, one after another (about 30 minutes on 2 cores); the tables land in
# bench/RESULTS.md. PostgreSQL runs need a server: BENCH_POSTGRES_URL.
BENCH_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

bench: install
	@{ \
	  echo "# tidings benchmarks"; echo; \
	  echo "Machine: $$(nproc) cores, $$(uname -m), Python $$($(BIN)/python -V | cut -d' ' -f2)."; \
	  echo; echo "## core.decide against the plain-tuple rules"; echo; \
	  $(BIN)/python bench/decide.py | tail -n 3; \
	  echo; echo "## core.decide with escalation, quiet hours and digests on"; echo; \
	  $(BIN)/python bench/decide.py --rules | tail -n 3; \
	  echo; echo "## SQLite drain against the naive loop"; echo; \
	  $(BIN)/python bench/dispatch.py --workload skip-heavy; \
	  $(BIN)/python bench/dispatch.py --workload notify-heavy; \
	  echo; echo "## PostgreSQL drain, 1 and 4 runner processes"; echo; \
	  $(BIN)/python bench/dispatch.py --database $(BENCH_POSTGRES_URL) --processes 1; \
	  $(BIN)/python bench/dispatch.py --database $(BENCH_POSTGRES_URL) --processes 4; \
	  echo; echo "## PostgreSQL drain with digests on (compare with 1 process above)"; echo; \
	  TIDINGS_DIGEST_AFTER_COOLDOWN=true $(BIN)/python bench/dispatch.py --database $(BENCH_POSTGRES_URL) --processes 1; \
	  echo; echo "## Email through a slow SMTP server (100 ms per message)"; echo; \
	  $(BIN)/python bench/smtp_concurrency.py --sample 10; \
	  echo; echo "## SMTP connections pooled against one per email (STARTTLS, AUTH)"; echo; \
	  $(BIN)/python bench/smtp_pool.py --rounds 3; \
	  echo; echo "## Latency from a producer's INSERT to the notification"; echo; \
	  $(BIN)/python bench/latency.py --database $(BENCH_POSTGRES_URL); \
	  $(BIN)/python bench/latency.py; \
	  echo; echo "## Database size under retention (SQLite, PostgreSQL)"; echo; \
	  $(BIN)/python bench/retention.py; \
	  $(BIN)/python bench/retention.py --database $(BENCH_POSTGRES_URL); \
	  echo; echo "## Peak memory of a drain as the queue grows"; echo; \
	  $(BIN)/python bench/memory.py; \
	  echo; echo "## Peak memory of a runner as its outbox grows (SQLite, PostgreSQL)"; echo; \
	  $(BIN)/python bench/outbox_memory.py; \
	  $(BIN)/python bench/outbox_memory.py --database $(BENCH_POSTGRES_URL); \
	} | tee bench/RESULTS.md

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
