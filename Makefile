# Voice Copilot: `make run` starts the app on the embedded default; `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-e2e lint eval bench bench-browser soak clean system-deps demo-data

help:
	@echo "make run        install into $(VENV) and start the app on http://127.0.0.1:$(PORT)"
	@echo "make test       install everything and run the whole test suite"
	@echo "make eval       speech, KB, disposition and intent evaluation on ../shared/data"
	@echo "make demo-data  past calls for the Metrics and Calls pages (scripted calls through the real pipeline)"
	@echo "make bench      latency, overhead, concurrency, copilot and start-up benchmarks (docs/performance.md)"
	@echo "make bench-browser  voice-to-voice in Chromium over RUNS Talk calls (default 10)"
	@echo "make soak       many short Live and Talk calls in Chromium for SOAK_MINUTES (default 5): calls that end for no reason, memory, threads"
	@echo "make lint       ruff"

# torch first, pinned: that exact version resolves to a CPU build here; anything that
# pulls torch in later (sentence-transformers) then finds it satisfied.
TORCH_VERSION := 2.13.0

$(VENV)/.runtime: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT)

# Debian packages the browser and Postgres tests need; installed only when missing and
# running as root.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (browser/Postgres tests will be skipped)"; fi; \
	fi

test-unit: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -q tests/unit tests/app tests/providers

test-e2e: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -q -m e2e tests/e2e

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest -q tests/unit tests/app tests/providers
	$(BIN)/python -m pytest -q -m e2e tests/e2e

SOAK_MINUTES ?= 5
SOAK_TABS ?= 4
soak: $(VENV)/.dev system-deps
	@mkdir -p bench-results
	$(BIN)/python -m core.bench.soak --minutes $(SOAK_MINUTES) --tabs $(SOAK_TABS) --json bench-results/soak.json

lint: $(VENV)/.dev
	$(BIN)/ruff check core components views tests app.py

eval: $(VENV)/.runtime
	$(BIN)/python -m core.eval stt --manifest ../shared/data/audio/references.tsv
	$(BIN)/python -m core.eval stt --manifest ../shared/data/audio/references.tsv --phone
	$(BIN)/python -m core.eval stt --sentences packs/bank/eval/caller_sentences.txt --voice piper
	$(BIN)/python -m core.eval stt --sentences packs/bank/eval/caller_sentences.txt
	$(BIN)/python -m core.eval stt --non-speech 60
	$(BIN)/python -m core.eval vad
	$(BIN)/python -m core.eval kb --docs ../shared/data/kb/doc2dial_docs.jsonl --queries ../shared/data/kb/doc2dial_queries.jsonl
	$(BIN)/python -m core.eval disposition --calls ../shared/data/calls/hvb_calls.jsonl
	$(BIN)/python -m core.eval intent --train ../shared/data/intent/banking77_train.csv --split 0.2 --fine-tune 2

# CALLS=8 DAYS=7 by default; about half a minute per call.
demo-data: $(VENV)/.runtime
	$(BIN)/python -m core.demo --calls $(or $(CALLS),8) --days $(or $(DAYS),7)

# Prints one table and writes the figures to bench-results/ (BENCH_ARGS=--quick: a short run).
bench: $(VENV)/.runtime
	$(BIN)/python -m tests.pg $(BIN)/python -m core.bench $(BENCH_ARGS)

# The Talk browser test RUNS times (about a minute each), then p50/p95 of what the caller hears.
bench-browser: $(VENV)/.dev system-deps
	@rm -rf bench-results/browser && mkdir -p bench-results/browser
	@for i in $$(seq 1 $(or $(RUNS),10)); do \
	  if $(BIN)/python -m pytest -q -m e2e tests/e2e/test_talk_browser.py >bench-results/browser/run$$i.log 2>&1; then \
	    cp test-artifacts/e2e/talk_latency.json bench-results/browser/run$$i.json; \
	  else \
	    cp -r test-artifacts/e2e bench-results/browser/run$$i-failed; \
	    echo "run $$i failed: bench-results/browser/run$$i.log, artifacts in run$$i-failed/"; \
	  fi; \
	done
	$(BIN)/python -m core.bench.browser bench-results/browser --json bench-results/browser-summary.json

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
