# mrivol — every target bootstraps its own virtual environment (.venv) on first use.
# torch is installed first, pinned in TORCH_VERSION (a CPU build here; set it, and TORCH_INDEX,
# for a CUDA build on GPU machines), then the package with the rest of requirements.lock.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         := .venv
BIN          := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
TORCH_INDEX  ?=
PIP_TORCH    := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

BUNDLE  ?= brats_seg
NET     ?=
DATA    ?=
FOLD    ?= 0
EPOCHS  ?=
PROFILE ?=
GPUS    ?= 1
RESUME  ?=
RUN     ?=
INPUT   ?=
OUT     ?=
MANIFEST ?=
HOST    ?= 127.0.0.1
PORT    ?= 5000

# optional `make train` arguments, passed on only when set
TRAIN_ARGS = --bundle $(BUNDLE) --fold $(FOLD) \
	$(if $(NET),--net $(NET)) $(if $(DATA),--data $(DATA)) \
	$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(PROFILE),--profile $(PROFILE)) \
	--gpus $(GPUS) $(if $(filter 1,$(RESUME)),--resume) $(if $(filter 0,$(RESUME)),--new-run)

# multi-node rendezvous settings reach torchrun through the environment
export NNODES NODE_RANK MASTER_ADDR MASTER_PORT

.DEFAULT_GOAL := help
.PHONY: help venv train cv study evaluate infer data preprocess plan compare test test-slow lint format mlflow-ui postgres \
	register export-model test-postgres mlflow-server docker-build docker-train clean

help: ## list the targets and their variables
	@echo "usage: make <target> [BUNDLE=brats_seg] [NET=<overlay>] [DATA=manifest.csv] [FOLD=0] [EPOCHS=n]"
	@echo "                     [PROFILE=cpu|gpu] [GPUS=n] [RESUME=1|0]   (multi-node: NNODES NODE_RANK MASTER_ADDR MASTER_PORT)"
	@echo "                     cross-validation: [FOLDS=0,1,2] [NETS=unet,agms3d] [BUDGET=minutes] [TTA=1] [CV=1]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/mrivol: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" $(PIP_TORCH)
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" -c requirements.lock -e ".[dev]"
	touch $(BIN)/mrivol

venv: $(BIN)/mrivol ## create .venv with pinned torch and the package (done by every target)

train: $(BIN)/mrivol ## train a bundle: synthesises phantoms when DATA is not given, logs to MLflow
	$(BIN)/mrivol train $(TRAIN_ARGS)

# cross-validation: every fold (FOLDS=0,1,2; default all) a child run of one MLflow parent
FOLDS   ?=
NETS    ?= unet,agms3d,dynunet,unetr,swin_unetr
BUDGET  ?=
CV_ARGS = --bundle $(BUNDLE) $(if $(FOLDS),--folds $(FOLDS)) $(if $(DATA),--data $(DATA)) \
	$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(PROFILE),--profile $(PROFILE)) \
	$(if $(BUDGET),--budget-minutes $(BUDGET))
cv: $(BIN)/mrivol ## cross-validate BUNDLE/NET: FOLDS=0,1,.. EPOCHS=n; OOF metrics, tuned post-processing (re-run continues)
	$(BIN)/mrivol cv $(CV_ARGS) $(if $(NET),--net $(NET)) --gpus $(GPUS)

study: $(BIN)/mrivol ## cross-validate NETS=unet,agms3d,... on the same folds [BUDGET=minutes per fold]; pick the best
	$(BIN)/mrivol study $(CV_ARGS) --nets $(NETS)

evaluate: $(BIN)/mrivol ## evaluate a run on its validation fold, a CV parent or ad_cls on DATA=test.csv [MC=T, default 10] [TTA=1] [ALLOW_OVERLAP=1]
	$(BIN)/mrivol evaluate --bundle $(BUNDLE) --run $(RUN) $(if $(DATA),--data $(DATA)) \
		$(if $(filter command line,$(origin MC)),--mc-samples $(MC)) $(if $(filter 1,$(TTA)),--tta) \
		$(if $(filter 1,$(ALLOW_OVERLAP)),--allow-subject-overlap)

MC ?= 1
infer: $(BIN)/mrivol ## segment (or, ad_cls, classify) new scans: RUN=<run id|CV parent|checkpoint> INPUT=<manifest|dir> OUT=<dir> [MC=T] [TTA=1] [SUBMISSION=1] [SHARD=i/n] [PROB_DTYPE=uint16]
	$(BIN)/mrivol infer --bundle $(BUNDLE) --run $(RUN) --input $(INPUT) --out $(OUT) --mc-samples $(MC) \
		$(if $(filter 1,$(SUBMISSION)),--submission) $(if $(filter 1,$(TTA)),--tta) \
		$(if $(SHARD),--shard $(SHARD)) $(if $(PROB_DTYPE),--prob-dtype $(PROB_DTYPE))

data: $(BIN)/mrivol ## synthesise the bundle's default phantom set and manifest (cached)
	$(BIN)/mrivol data --bundle $(BUNDLE) $(if $(PROFILE),--profile $(PROFILE))

# pytest exits 5 when it collects nothing: that is a failure, never a silent pass
WORKERS ?= 2
preprocess: $(BIN)/mrivol ## preprocess MANIFEST into OUT (cached, parallel: WORKERS=2; STEPS="...")
	$(BIN)/mrivol preprocess --manifest $(MANIFEST) --out $(OUT) --workers $(WORKERS) \
		$(if $(STEPS),--steps $(STEPS))

plan: $(BIN)/mrivol ## nnU-Net-style plan for MANIFEST (writes <manifest>.plans.json)
	$(BIN)/mrivol plan --manifest $(MANIFEST) --out $(basename $(MANIFEST)).plans.json

compare: $(BIN)/mrivol ## table and PNG chart of the runs of BUNDLE's experiment (CV=1: its cross-validations)
	$(BIN)/mrivol compare --experiment $(BUNDLE) $(if $(filter 1,$(CV)),--cv)

ALIAS ?= champion
FORMAT ?= onnx
register: $(BIN)/mrivol ## register RUN's MLflow model as BUNDLE (NAME=...) with ALIAS=champion
	$(BIN)/mrivol register --run $(RUN) --name $(or $(NAME),$(BUNDLE)) --alias $(ALIAS)

export-model: $(BIN)/mrivol ## export RUN's model: FORMAT=onnx|torchscript|bundle OUT=file or folder (parity-checked)
	$(BIN)/mrivol export --run $(RUN) --format $(FORMAT) --out $(OUT)

# PostgreSQL server binaries for the MLflow-on-PostgreSQL test: Debian's package when initdb is
# missing (needs root, as on CI); Debian keeps them off PATH, so they are linked into it
postgres: ## install PostgreSQL's server binaries if missing (root; CI runs this before the tests)
	@if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then \
		echo "PostgreSQL: $$(initdb --version)"; exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then echo "make postgres: initdb missing; run as root or apt-get install postgresql" >&2; exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	bin=$$(ls -d /usr/lib/postgresql/*/bin | tail -1); \
	for tool in initdb pg_ctl postgres; do ln -sf "$$bin/$$tool" /usr/local/bin/$$tool; done; \
	echo "PostgreSQL: $$("$$bin/initdb" --version) (linked into /usr/local/bin)"

test: $(BIN)/mrivol ## run the fast test suite (what CI runs)
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; \
	[ $$rc -eq 0 ]

test-postgres: $(BIN)/mrivol postgres ## the MLflow-server-on-PostgreSQL test (slow-marked; CI runs it, may not skip)
	MRIVOL_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -v -m slow tests/tracking/test_server.py -k postgresql

test-slow: $(BIN)/mrivol ## run the heavy tests marked slow (longer trainings, MC inference, servers)
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/mrivol ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/mrivol ## ruff autoformat and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

mlflow-ui: $(BIN)/mrivol ## serve the MLflow UI of the local store (HOST=127.0.0.1 PORT=5000)
	$(BIN)/mrivol mlflow-ui --host $(HOST) --port $(PORT)

BACKEND ?=
mlflow-server: $(BIN)/mrivol ## MLflow tracking server on HOST:PORT (BACKEND=sqlite:///... or postgresql://...)
	$(BIN)/mrivol mlflow-server --host $(HOST) --port $(PORT) \
		$(if $(BACKEND),--backend-store-uri $(BACKEND))

docker-build: ## build the GPU trainer and MLflow server images (docker/Dockerfile)
	docker compose -f docker/compose.yaml --profile train build

docker-train: ## train BUNDLE in the GPU container on GPUS=n GPUs (default 1), logging to the compose MLflow server
	docker compose -f docker/compose.yaml up -d --wait mlflow
	GPUS=$(GPUS) docker compose -f docker/compose.yaml run --rm trainer train \
		$(TRAIN_ARGS) $(if $(PROFILE),,--profile gpu)

clean: ## remove caches, runs and the local MLflow store (keeps .venv)
	rm -rf .cache runs mlruns .pytest_cache .ruff_cache
