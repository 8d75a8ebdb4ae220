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

# The main job on the built-in default: export ResNet-50, check parity against PyTorch,
# then time PyTorch eager against ONNX Runtime on this CPU, side by side.
demo: setup
	$(BIN)/resdeploy export resnet50 -o $(DEMO_DIR)/resnet50 --force
	$(BIN)/resdeploy bench $(DEMO_DIR)/resnet50 --engine torch,ort --batch 1,8

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
