# The two commands of the README. Both install what is missing (scripts/setup.sh),
# configure and build in Release, then run.
BUILD_DIR ?= build
JOBS ?= 2

.PHONY: all build test demo sanitize fuzz clean

all: build

build:
	UNITRAIN_JOBS=$(JOBS) scripts/setup.sh $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD_DIR)

# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (clang, own folder).
sanitize:
	UNITRAIN_JOBS=$(JOBS) scripts/sanitize.sh

# Each libFuzzer target of fuzz/ for FUZZ_SECONDS (default 60) from its seed corpus.
fuzz:
	UNITRAIN_JOBS=$(JOBS) scripts/fuzz.sh

clean:
	rm -rf $(BUILD_DIR)
