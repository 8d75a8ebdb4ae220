# Two commands on a fresh clone:  `make demo`  and  `make test`.
# Both create .venv and install resdeploy with the versions pinned in constraints.txt.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.resdeploy-installed
DEMO_DIR ?= artifacts/demo

.PHONY: setup demo test test-fast lint typecheck clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# tensorrt-stubs declares `tensorrt` as a dependency, which has no wheel here: stubs only.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt tensorrt-stubs
	# The `triton` extra (Triton's ModelConfig schema, for `package --triton` checks), --no-deps too:
	# tritonclient declares ml-dtypes<=0.5.4 and, for grpc, protobuf<7, which would move the pins;
	# model_config_pb2 runs on the pinned protobuf (tests/serving check it).
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt tritonclient grpcio python-rapidjson urllib3
	touch $@

setup: $(STAMP)

# The whole job on real images (resdeploy/demo.py): train ResNet-20 on scikit-learn's digits,
# export, FP16, INT8 --target cpu, validate each on held-out digits, bench torch/ORT/OpenVINO
# at batch 1 and 8, write $(DEMO_DIR)/report.html and print the accuracy/speed table.
# One thread per engine by default: on a shared machine (CI, other jobs) two spinning OpenMP
# threads per engine on 2 busy cores were 5-40x slower; `make demo DEMO_THREADS=` for the runtimes' own.
DEMO_THREADS ?= 1
demo: setup
	$(BIN)/python -m resdeploy.demo --output $(DEMO_DIR) $(if $(DEMO_THREADS),--threads $(DEMO_THREADS))

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check resdeploy tests benchmarks

typecheck: setup
	$(BIN)/mypy resdeploy

clean:
	rm -rf $(VENV) artifacts .pytest_cache .mypy_cache
