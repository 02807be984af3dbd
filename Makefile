# mmapfs — build, install what is missing, test.
#
#   make              build everything into build/
#   make test         install missing packages, build, run every test
#   make layering     check that no #include crosses a forbidden arrow
#   make check-asan   unit tests under AddressSanitizer + UBSan (part of make test)
#   make check-tsan   the threaded unit tests under ThreadSanitizer (part of make test)
#   make mount        build, create /var/lib/mmapfs/default.img (1 GiB) if missing,
#                     mount it on /mnt/mmapfs (unmount: fusermount3 -u /mnt/mmapfs)
#   make install      install programs, libmmio, its header and mmio.pc, man
#                     pages under $(PREFIX) (/usr/local), mount.mmapfs in /sbin;
#                     honours DESTDIR; writes a manifest (docs/MOUNT.md)
#   make uninstall    remove exactly what the manifest lists
#   make bench        benchmark against ext4 on a loop device (ratios)
#   make fuzz         libFuzzer over image parsing, FUZZ_SECONDS=N (docs/FUZZ.md)

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=gnu11 -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null)
LDLIBS    = -lpthread

B        ?= build
# parallel compilation inside `make test` and the sanitizer targets (their
# builds ran one compiler at a time: 30 s instead of 16 s for `all` on
# 2 cores); `make JOBS=1 test` compiles serially
JOBS     ?= $(shell nproc 2>/dev/null || echo 1)
ASAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_FLAGS = -fsanitize=thread

# ---- sources -------------------------------------------------------------
MMIO_SRC  := $(wildcard src/io/*.c)
CORE_SRC  := $(wildcard src/util/*.c src/journal/*.c src/fs/*.c)
FSCK_SRC  := $(wildcard src/fsck/*.c)
FUSE_SRC  := $(wildcard src/fuse/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)

MMIO_OBJ  := $(MMIO_SRC:%.c=$(B)/obj/%.o)
CORE_OBJ  := $(CORE_SRC:%.c=$(B)/obj/%.o)
FSCK_OBJ  := $(FSCK_SRC:%.c=$(B)/obj/%.o)
FUSE_OBJ  := $(FUSE_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps test unit layering check-asan check-tsan integration bench crash-sample crash-test mount install clean
# a tool is built once its main exists: src/tools/<name>.c
TOOL_NAMES := $(if $(wildcard src/tools/mmapfs.c),mmapfs) \
              $(if $(wildcard src/tools/mkfs.c),mkfs.mmapfs) \
              $(if $(wildcard src/tools/fsck.c),fsck.mmapfs) \
              $(if $(wildcard src/tools/stat.c),mmapfs-stat) \
              $(if $(wildcard src/tools/resize.c),mmapfs-resize) \
              $(if $(wildcard src/tools/trim.c),mmapfs-trim)
all: $(B)/libmmio.a $(B)/libmmapfs.a $(B)/libmmapfs-fsck.a $(addprefix $(B)/,$(TOOL_NAMES)) $(UNIT_BIN)

# ---- packages: installed only when missing (Debian 12, as root) -----------
DEB_PKGS = build-essential pkg-config libfuse3-dev fuse3 libcmocka-dev \
           attr acl rsync git sqlite3 util-linux e2fsprogs fio hyperfine clang
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

# ---- objects and libraries --------------------------------------------------
$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(FUSE_CFLAGS) -MMD -MP -c $< -o $@

$(B)/libmmio.a: $(MMIO_OBJ)
	@mkdir -p $(B); rm -f $@; ar rcs $@ $^

$(B)/libmmapfs.a: $(CORE_OBJ)
	@mkdir -p $(B); rm -f $@; ar rcs $@ $^

# the checker (src/fsck/) is a library of its own on top of the core, as
# e2fsck is apart from libext2fs: the core cannot call it (it would not link)
$(B)/libmmapfs-fsck.a: $(FSCK_OBJ)
	@mkdir -p $(B); rm -f $@; ar rcs $@ $^

LIBS = $(B)/libmmapfs-fsck.a $(B)/libmmapfs.a $(B)/libmmio.a

$(B)/mmapfs: $(FUSE_OBJ) $(B)/obj/src/tools/mmapfs.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(FUSE_LIBS) $(LDLIBS)
$(B)/mkfs.mmapfs: $(B)/obj/src/tools/mkfs.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/fsck.mmapfs: $(B)/obj/src/tools/fsck.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/mmapfs-stat: $(B)/obj/src/tools/stat.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/mmapfs-resize: $(B)/obj/src/tools/resize.o $(B)/obj/src/tools/cli.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(B)/mmapfs-trim: $(B)/obj/src/tools/trim.o $(B)/obj/src/tools/cli.o $(LIBS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# mmapfs-resize with a stop after each step of the grow, for
# tests/integration/66_resize.sh (tests/integration/resize_stop.c): the
# tool compiled a second time with its main renamed; the shipped
# mmapfs-resize has no stop.
$(B)/obj/tests/resize_main.o: src/tools/resize.c tests/integration/resize_stop.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -Dmain=resize_real_main \
	    -include tests/integration/resize_stop.h -MMD -MP -c $< -o $@
$(B)/obj/tests/resize_stop.o: tests/integration/resize_stop.c tests/integration/resize_stop.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c $< -o $@
$(B)/tests/mmapfs-resize-stop: $(B)/obj/tests/resize_main.o $(B)/obj/tests/resize_stop.o \
                               $(B)/obj/src/tools/cli.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
all: $(B)/tests/mmapfs-resize-stop

# the FUSE floor of make bench (tests/bench/nullfs.c, docs/BENCH.md): built
# with everything else, so that it compiles under the same warnings
$(B)/tests/nullfs: tests/bench/nullfs.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) $(FUSE_CFLAGS) -o $@ $< $(FUSE_LIBS)
all: $(B)/tests/nullfs

$(B)/tests/%: tests/unit/%.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -MMD -MP -o $@ $< $(LIBS) -lcmocka $(LDLIBS) $(TEST_LDFLAGS)

# test_fault replaces the allocator and the engine's system calls by its
# own wrappers (tests/unit/fault_wrap.h, docs/FAULTS.md): nothing in the
# libraries knows about fault injection.
FAULT_WRAP = malloc calloc realloc strdup posix_memalign pread64 pwrite64 fdatasync fsync msync
$(B)/tests/test_fault: TEST_LDFLAGS = $(addprefix -Wl$(comma)--wrap=,$(FAULT_WRAP))
comma := ,

-include $(shell find $(B)/obj $(B)/tests -name '*.d' 2>/dev/null)

# ---- tests ----------------------------------------------------------------
# the arrows between the parts (docs/DESIGN.md, "Parts and arrows")
layering:
	@tests/layering.sh

unit: all $(B)/mmio_outside
	@$(B)/mmio_outside
	@tests/run-unit.sh $(B)

# the engine used from outside, exactly as docs/ENGINE.md tells a user to
$(B)/mmio_outside: tests/link/mmio_outside.c $(B)/libmmio.a
	$(CC) -Iinclude $(WARN) $(CFLAGS) -o $@ $< $(B)/libmmio.a -lpthread

check-asan:
	$(MAKE) -j$(JOBS) B=build-asan CFLAGS="-O1 -g $(ASAN_FLAGS)" all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 tests/run-unit.sh build-asan

# ThreadSanitizer over the unit tests whose threads share the engine, the
# journal and the fs core: test_concurrency (threads hammering the fs while
# commits run), test_journal (group commit, async commit, throttling),
# test_mmio (concurrent writers and syncs), test_fs_file (concurrent
# writers). The other unit tests have no threads besides the engine's sync
# loop and the commit thread, and take minutes under TSan. Only these
# binaries and the two libraries are built into build-tsan; the first race
# stops the run (halt_on_error) and fails it. No suppressions.
TSAN_TESTS = test_concurrency test_journal test_mmio test_fs_file test_attr_owner
# TSan puts its shadow memory at fixed addresses; where the kernel places
# mmaps with more randomness than it expects (vm.mmap_rnd_bits above 28)
# it stops with "FATAL: ThreadSanitizer: unexpected memory mapping". The
# tests therefore run with address-space randomisation off (setarch -R)
# wherever setarch can do that, directly otherwise.
TSAN_RUNNER = $(shell setarch "$$(uname -m)" -R true 2>/dev/null && echo setarch "$$(uname -m)" -R)

check-tsan:
	$(MAKE) -j$(JOBS) B=build-tsan CFLAGS="-O1 -g $(TSAN_FLAGS)" $(addprefix build-tsan/tests/,$(TSAN_TESTS))
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" UNIT_RUNNER="$(TSAN_RUNNER)" \
	  tests/run-unit.sh build-tsan $(TSAN_TESTS)

integration: all
	@tests/integration/run.sh $(B)

# side-by-side with ext4 on a loop device, ratios (docs/BENCH.md)
bench: all
	tests/bench/run.sh $(B)

crash-sample: all
	@tests/crash/run.sh $(B)

crash-test: all
	@CRASH_LONG=1 tests/crash/run.sh $(B)

test: deps
	$(MAKE) layering
	$(MAKE) -j$(JOBS) all
	$(MAKE) unit
	$(MAKE) check-asan
	$(MAKE) check-tsan
	$(MAKE) integration
	$(MAKE) crash-sample
	$(MAKE) fuzz-test

# ---- convenience: the README's first command -------------------------------
IMG ?= /var/lib/mmapfs/default.img
MNT ?= /mnt/mmapfs
mount: deps
	$(MAKE) -j$(JOBS) all
	@mkdir -p $(MNT) $(dir $(IMG))
	@if mountpoint -q $(MNT); then echo "$(MNT) is already a mount point"; exit 1; fi
	@[ -e $(IMG) ] || $(B)/mkfs.mmapfs -s 1G $(IMG)
	$(B)/mmapfs $(IMG) $(MNT)
	@echo "mounted $(IMG) on $(MNT); unmount with: fusermount3 -u $(MNT)"

# ---- install / uninstall: mount-scripts/install.sh, docs/MOUNT.md "Installing" -----
# mount(8) runs helpers only from /sbin (and /sbin/fs.d, /sbin/fs), so
# mount.mmapfs goes there whatever the PREFIX (under DESTDIR if given).
# PREFIX and DESTDIR may come from the environment; the other directories
# only from the command line (make install LIBDIR=/usr/lib64), so that an
# unrelated LIBDIR or MANIFEST in the environment does not move files.
PREFIX       ?= /usr/local
DESTDIR      ?=
SBINDIR       = $(PREFIX)/sbin
LIBDIR        = $(PREFIX)/lib
INCLUDEDIR    = $(PREFIX)/include
PKGCONFIGDIR  = $(LIBDIR)/pkgconfig
MANDIR        = $(PREFIX)/share/man
DOCDIR        = $(PREFIX)/share/doc/mmapfs
MANIFEST      = $(PREFIX)/share/mmapfs/install-manifest
MOUNT_HELPER_DIR = /sbin
INSTALL_ENV = PREFIX='$(PREFIX)' SBINDIR='$(SBINDIR)' LIBDIR='$(LIBDIR)' \
              INCLUDEDIR='$(INCLUDEDIR)' PKGCONFIGDIR='$(PKGCONFIGDIR)' \
              MANDIR='$(MANDIR)' DOCDIR='$(DOCDIR)' MANIFEST='$(MANIFEST)' \
              MOUNT_HELPER_DIR='$(MOUNT_HELPER_DIR)' DESTDIR='$(DESTDIR)'
.PHONY: uninstall

install: all
	$(INSTALL_ENV) mount-scripts/install.sh $(B)

uninstall:
	$(INSTALL_ENV) mount-scripts/uninstall.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz

include tests/crash/crash.mk
include tests/fuzz/fuzz.mk
