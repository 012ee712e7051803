# The README's commands. CMake + Ninja do the building; this file only strings steps
# together. Every target installs missing Debian packages first (scripts/deps.sh).
#
#   make run        build, then `braid compare` (the main job)
#   make test       build, then the whole test suite through CTest
#   make sanitize   the whole suite under ASan+UBSan, then under TSan
#   make bench      the benchmarks of BENCH.md, side by side with ../shared/peers
#   make install    install headers, library, braid.pc and the CMake package (PREFIX=...)
#
# DEPS=0 skips the package check (for machines without Debian's dpkg/apt).

BUILD    ?= build
PREFIX   ?= /usr/local
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all deps build run test sanitize sanitize-asan sanitize-tsan bench install clean format

all: build

DEPS ?= 1

deps:
	@if [ "$(DEPS)" != 0 ]; then scripts/deps.sh build; fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/apps/braid/braid compare

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

# Each sanitizer gets its own build tree. TSAN_OPTIONS/ASAN_OPTIONS make any report
# fail the test that produced it. die_after_fork=0: the process layer's children are
# forked from a parent with threads (the child watcher's, a pool's) and may start threads
# of their own, which ThreadSanitizer refuses by default; braid's fork hooks leave the
# child's state consistent, and the child is still checked like any other process.
sanitize: sanitize-asan sanitize-tsan

sanitize-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	      -DBRAID_SANITIZE=address,undefined -DBRAID_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

sanitize-tsan: deps
	cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DBRAID_SANITIZE=thread -DBRAID_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-tsan -j $(JOBS)
	TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:suppressions=$(CURDIR)/scripts/tsan.supp" \
	ctest --test-dir build-tsan --output-on-failure -j $(JOBS) $(CTEST_FLAGS)

bench:
	@if [ "$(DEPS)" != 0 ]; then scripts/deps.sh bench; fi
	@$(MAKE) --no-print-directory build
	scripts/bench.sh $(BENCH_ARGS)

# --prefix: PREFIX counts even when the build tree was configured with another one.
# ldconfig refreshes the loader's cache so that programs find the new libbraid.so
# at once (as root, for a system prefix; otherwise set LD_LIBRARY_PATH or an rpath).
install: build
	cmake --install "$(BUILD)" --prefix "$(PREFIX)"
	@if [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-tsan
