# tests/fuzz/fuzz.mk — the libFuzzer harness (docs/FUZZ.md), included by
# the top Makefile.
#
#   make fuzz [FUZZ_SECONDS=N]   fuzz every target for N seconds in all
#                                (default 600), corpus kept in build-fuzz/
#   make fuzz-test               what `make test` runs: the regression
#                                inputs (tests/fuzz/regress/) replayed, then
#                                about 36 s of fuzzing in all, from a fresh
#                                corpus of 21 seeds
#
# The targets and the libraries are built with clang, -fsanitize=fuzzer and
# ASan+UBSan into build-fuzz/. The regression replay uses replay_main.c
# instead of libFuzzer, built with ASan+UBSan into build-asan/.

FUZZ_B        = build-fuzz
FUZZ_TARGETS  = fuzz_mount fuzz_fsck fuzz_journal
FUZZ_SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SECONDS ?= 600
FUZZ_COMMON   = tests/fuzz/fuzz_image.c
FUZZ_DEPS     = $(FUZZ_COMMON) tests/fuzz/fuzz_image.h

.PHONY: fuzz fuzz-test fuzz-build fuzz-regress

# libFuzzer binaries: the libraries built by clang with coverage hooks
fuzz-build:
	@command -v clang >/dev/null || { echo "fuzz: clang is missing (make deps installs it)" >&2; exit 1; }
	$(MAKE) -j$(JOBS) B=$(FUZZ_B) CC=clang CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	    $(FUZZ_B)/libmmapfs.a $(FUZZ_B)/libmmio.a $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz/%)

$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_DEPS) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I. $(WARN) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COMMON) $(LIBS) $(LDLIBS)

# the same targets without libFuzzer, for replaying files
$(B)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(FUZZ_DEPS) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I. $(WARN) $(CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(FUZZ_COMMON) $(LIBS) $(LDLIBS)

fuzz-regress:
	$(MAKE) B=build-asan CFLAGS="-O1 -g $(ASAN_FLAGS)" $(FUZZ_TARGETS:%=build-asan/fuzz-replay/%)
	@tests/fuzz/run.sh regress build-asan

fuzz: fuzz-build
	@tests/fuzz/run.sh fuzz $(FUZZ_B) $(FUZZ_SECONDS)

fuzz-test: fuzz-regress fuzz-build
	@tests/fuzz/run.sh sample $(FUZZ_B) 36
