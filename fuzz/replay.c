/*
 * replay.c - a plain main() for a libFuzzer target: runs its entry point on
 * every file named, or in the directories named, so a corpus is a test that
 * needs neither libFuzzer nor clang (`make test` runs fuzz/corpus/http so).
 *
 *   fuzz_http_replay fuzz/corpus/http [more files or directories]
 *
 * Exits 0 after running them all, 1 if one cannot be read; a failed check
 * in the target aborts, naming the input first.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer's default -max_len is 4 KiB; a saved input may be longer. */
#define REPLAY_BYTES_MAX (1024 * 1024)

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = malloc(REPLAY_BYTES_MAX);
    size_t size = f != NULL && data != NULL ? fread(data, 1, REPLAY_BYTES_MAX, f) : 0;
    bool ok = f != NULL && data != NULL && !ferror(f) && feof(f);
    if (f != NULL) {
        fclose(f);
    }
    if (!ok) {
        fprintf(stderr, "replay: cannot read %s (or it is over %d bytes)\n", path,
                REPLAY_BYTES_MAX);
        free(data);
        return -1;
    }
    fprintf(stderr, "replay: %s\n", path);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in dir, in name order (so runs are alike). */
static int run_dir(const char *dir, unsigned *count)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char **grown = e->d_name[0] != '.' ? realloc(names, (n + 1) * sizeof *names) : names;
        if (grown != NULL && e->d_name[0] != '.') {
            names = grown;
            names[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof *names, compare_names);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (names[i] == NULL || run_file(path) != 0) {
            rc = -1;
        } else {
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            rc |= run_dir(argv[i], &count);
        } else if (run_file(argv[i]) != 0) {
            rc = -1;
        } else {
            count++;
        }
    }
    fprintf(stderr, "replay: %u inputs ran, every check held\n", count);
    return rc != 0 || count == 0;
}
