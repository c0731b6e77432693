# Convenience front end over CMake. `make demo` runs the main job on the built-in
# tiny default; `make test` builds and runs every test; `make test-asan` does the
# same under AddressSanitizer + UBSan; `make fuzz-ci` runs each fuzz target briefly.
JOBS ?= $(shell nproc)
BUILD ?= build

.PHONY: all build test test-asan fuzz fuzz-ci demo demo-prune bench clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVLMN_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)
	cd build-asan && VLMN_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DVLMN_FUZZ=ON -DVLMN_SANITIZE=ON -DVLMN_MPI=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS)

# Each target for FUZZ_SECONDS (default 30) over its seed corpus in fuzz/corpus/NAME.
fuzz-ci: fuzz
	bash scripts/fuzz-ci.sh

demo: build
	bash scripts/demo.sh $(BUILD)

demo-prune: build
	bash scripts/demo-prune.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz
