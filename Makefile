# The two commands a newcomer needs: `make run` and `make test`. Both bootstrap the venv.
PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/customers/v1/*.proto)
DESCRIPTOR := gen/customers.pb

.PHONY: venv gen gen-check run test test-fast lint fmt bench soak clean browser ts-client

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Regenerates gen/ (stubs, .pyi and the descriptor set Envoy's transcoder loads).
# googleapis-common-protos ships google/api and google/rpc protos in site-packages.
gen: $(STAMP)
	$(PY) -m scripts.gen_protos

# CI: the committed gen/ must be what `make gen` produces (gen/openapi.json included: a
# changed REST path, status or schema shows up here). Untracked files under gen/ count too.
gen-check: gen
	git diff --exit-code -- gen/ || (echo "gen/ is stale: run make gen and commit" && exit 1)
	test -z "$$(git status --porcelain -- gen/)" || (echo "gen/ has files git does not know: commit them" && exit 1)

run: $(STAMP)
	$(PY) -m server migrate
	$(PY) -m server dev

test: $(STAMP) ts-client
	$(PY) -m pytest

# The TypeScript client's packages (tests/e2e/test_typescript_client.py runs its end-to-end
# script), exactly as package-lock.json pins them; again whenever the lock file changes.
TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed
ts-client: $(TS_STAMP)

$(TS_STAMP): $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund
	touch $(TS_STAMP)

# The /docs browser test drives Debian's chromium (playwright's own browser download needs
# a host we do not reach). Installs it with apt when it is missing; CI runs this first.
browser:
	command -v chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m gateway validate
	$(PY) -m scripts.buf_check

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) -m bench
	$(PY) -m bench.streams
	$(PY) -m bench.webhooks --receivers 4 --events 500

soak: $(STAMP)
	$(PY) -m bench.soak --minutes 10

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(TS_CLIENT)/node_modules
