# tests/crash/crash.mk — build rules of the crash harness (included by the
# top Makefile: `include tests/crash/crash.mk`).
#
#   $(B)/tests/crash/mmapfs-record   the mount daemon with the crash recorder
#   $(B)/tests/crash/crash_extract   recovery + tree copy through the fs API
#
# The recording daemon is src/tools/mmapfs.c compiled a second time with its
# main renamed (-Dmain=mmapfs_real_main), linked with tests/crash/recorder.c
# and record_main.c; the production build/mmapfs contains no recording code.

CRASH_BIN := $(B)/tests/crash/mmapfs-record $(B)/tests/crash/crash_extract

.PHONY: crash-bins
crash-bins: $(CRASH_BIN)
all: $(CRASH_BIN)

$(B)/obj/crash/mmapfs_main.o: src/tools/mmapfs.c tests/crash/record_main.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(FUSE_CFLAGS) -Dmain=mmapfs_real_main \
	    -include tests/crash/record_main.h -MMD -MP -c $< -o $@

$(B)/obj/crash/%.o: tests/crash/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(FUSE_CFLAGS) -Itests/crash -MMD -MP -c $< -o $@

$(B)/tests/crash/mmapfs-record: $(FUSE_OBJ) $(B)/obj/crash/mmapfs_main.o \
        $(B)/obj/crash/record_main.o $(B)/obj/crash/recorder.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(FUSE_LIBS) $(LDLIBS)

$(B)/tests/crash/crash_extract: $(B)/obj/crash/crash_extract.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

