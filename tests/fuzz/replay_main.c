/*
 * replay_main.c — runs a fuzz target over input files without libFuzzer
 * (linked instead of -fsanitize=fuzzer): `make test` replays
 * tests/fuzz/regress/ with it under ASan/UBSan whatever the compiler, and
 * a crash found by `make fuzz` is reproduced with it under gdb.
 *   fuzz_<target>-replay FILE...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 2;
        }
        static uint8_t buf[1 << 20];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        uint8_t *copy = malloc(n ? n : 1);   /* exact size: ASan sees overreads */
        if (!copy)
            return 2;
        memcpy(copy, buf, n);
        fprintf(stderr, "replay %s (%zu bytes)\n", argv[i], n);
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
    }
    return 0;
}
