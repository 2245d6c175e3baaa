# Convenience wrapper around CMake. The two commands a newcomer needs:
#   make demo   install dependencies if missing, build, and run the main job on the default model
#   make test   install dependencies if missing, build (normal and ASan+UBSan), run every test
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
MODEL ?= ../shared/models/tinystories-llama-12L
TEXT ?= ../shared/data/tinystories-sampled-val.txt

.PHONY: all deps build build-asan demo test test-asan clean

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
	head -n 100 $(TEXT) > $(BUILD)/demo-stories.txt
	$(BUILD)/lsa capture --model $(MODEL) --lines $(BUILD)/demo-stories.txt --out output/demo.h5
	$(BUILD)/lsa info output/demo.h5

test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
