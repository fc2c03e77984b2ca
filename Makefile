# The two commands of the README. Both install what is missing (scripts/setup.sh),
# configure and build in Release, then run.
BUILD_DIR ?= build
JOBS ?= 2

.PHONY: all build test demo clean

all: build

build:
	UNITRAIN_JOBS=$(JOBS) scripts/setup.sh $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	scripts/demo.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)
