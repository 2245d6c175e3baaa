# Convenience wrapper around CMake. The two commands a newcomer needs:
#   make demo   install dependencies if missing, build, capture the demo corpus with the demo model and
#               write the report to output/demo/
#   make test   install dependencies if missing, build (normal and ASan+UBSan), run every test
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
MODEL ?= models/demo
CORPUS ?= models/demo/corpus.txt

.PHONY: all deps build build-asan demo test test-asan bench fuzz clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSA_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLSA_WERROR=ON -DLSA_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	$(BUILD)/lsa info $(MODEL)
	mkdir -p output/demo
	$(BUILD)/lsa capture --model $(MODEL) --lines $(CORPUS) --out output/demo/capture.h5
	$(BUILD)/lsa info output/demo/capture.h5
	$(BUILD)/lsa report output/demo/capture.h5 --out output/demo

test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# libFuzzer targets (clang, ASan+UBSan) in build-fuzz/, each run FUZZ_SECONDS: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 60
fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: build
	cmake --build $(BUILD) --target benches -j $(JOBS)
	$(BUILD)/bench/peak
	bench/forward.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
