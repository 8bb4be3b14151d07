/* The C API's contract, checked from C (scripts/test-capi.sh): NULL arguments, bad files,
 * error codes and messages, tokenize into a small buffer, a callback that stops, reset, and
 * ember_open_buffer with an aligned and a misaligned copy giving the same tokens.
 *
 *   capi_check MODEL   prints "capi: N passed, N failed" and exits non-zero on a failure
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"

static int passed, failed;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (cond) {                                                         \
            passed++;                                                       \
        } else {                                                            \
            failed++;                                                       \
            fprintf(stderr, "FAIL line %d: %s (%s)\n", __LINE__, #cond,     \
                    ember_last_error());                                    \
        }                                                                   \
    } while (0)

typedef struct {
    char text[4096];
    size_t len;
    int tokens;
    int stop_after;
} collect;

static int collect_piece(void *user, uint32_t token, const char *text, size_t len) {
    collect *c = user;
    (void)token;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, text, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    c->tokens++;
    return c->stop_after > 0 && c->tokens >= c->stop_after;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* 64 extra bytes: room to place the copy at an aligned and a misaligned address. */
    unsigned char *buf = malloc((size_t)n + 128);
    if (!buf || fread(buf + 64, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    ember_model *m = NULL;
    ember_sampling greedy = ember_sampling_greedy();
    collect c = {0};

    /* NULL arguments and bad files: codes and messages, never a crash. */
    CHECK(ember_open(NULL, 0, &m) == EMBER_ERR_NULL && strstr(ember_last_error(), "path"));
    CHECK(ember_open(argv[1], 0, NULL) == EMBER_ERR_NULL);
    CHECK(ember_open("/nonexistent/model.ember", 0, &m) == EMBER_ERR_IO && m == NULL);
    CHECK(ember_open(argv[0], 0, &m) == EMBER_ERR_FORMAT && strlen(ember_last_error()) > 0);
    CHECK(ember_open_buffer(NULL, 10, 0, &m) == EMBER_ERR_NULL);
    unsigned char junk[100] = {0};
    CHECK(ember_open_buffer(junk, sizeof junk, 0, &m) == EMBER_ERR_FORMAT);
    CHECK(ember_open(argv[1], 1u << 30, &m) == EMBER_ERR_ARGUMENT);
    CHECK(ember_generate(NULL, "x", 1, NULL, collect_piece, &c) == EMBER_ERR_NULL);
    CHECK(ember_reset(NULL) == EMBER_ERR_NULL);
    ember_free(NULL);

    CHECK(ember_open(argv[1], 256, &m) == EMBER_OK && m != NULL);
    CHECK(strcmp(ember_last_error(), "") == 0);
    size_t n = 0;
    CHECK(ember_tokenize(m, NULL, NULL, 0, &n) == EMBER_ERR_NULL);
    CHECK(ember_tokenize(m, "Hello world", NULL, 0, NULL) == EMBER_ERR_NULL);
    CHECK(ember_tokenize(m, "Hello world", NULL, 0, &n) == EMBER_ERR_BUFFER && n > 0);
    uint32_t ids[64];
    size_t need = n;
    CHECK(ember_tokenize(m, "Hello world", ids, 64, &n) == EMBER_OK && n == need);
    CHECK(ember_tokenize(m, "\xff\xfe", ids, 64, &n) == EMBER_ERR_ARGUMENT);
    CHECK(ember_generate(m, "x", 1, &greedy, NULL, NULL) == EMBER_ERR_NULL);
    CHECK(ember_generate(m, "", 4, &greedy, collect_piece, &c) == EMBER_OK ||
          strstr(ember_last_error(), "empty"));
    ember_sampling bad = greedy;
    bad.top_p = 2.0f;
    CHECK(ember_generate(m, "Hi", 4, &bad, collect_piece, &c) == EMBER_ERR_ARGUMENT);

    /* Greedy twice after a reset: the same text; a callback that returns nonzero stops. */
    ember_reset(m);
    collect a = {0}, b = {0}, s = {.stop_after = 3};
    CHECK(ember_generate(m, "Once upon a time", 16, NULL, collect_piece, &a) == EMBER_OK);
    CHECK(ember_reset(m) == EMBER_OK);
    CHECK(ember_generate(m, "Once upon a time", 16, &greedy, collect_piece, &b) == EMBER_OK);
    CHECK(a.len > 0 && strcmp(a.text, b.text) == 0);
    CHECK(ember_reset(m) == EMBER_OK);
    CHECK(ember_generate(m, "Once upon a time", 16, &greedy, collect_piece, &s) == EMBER_OK && s.tokens == 3);
    /* A prompt beyond the context left. */
    ember_reset(m);
    char big[8192];
    for (size_t i = 0; i + 6 < sizeof big; i += 6) memcpy(big + i, "hello ", 6);
    big[sizeof big - 8] = '\0';
    CHECK(ember_generate(m, big, 4, &greedy, collect_piece, &c) == EMBER_ERR_CONTEXT);
    ember_free(m);

    /* From memory: an aligned buffer (used in place) and a misaligned one (copied). */
    size_t len = 0;
    unsigned char *raw = read_file(argv[1], &len);
    CHECK(raw != NULL);
    if (raw) {
        unsigned char *aligned = raw + (64 - ((uintptr_t)raw % 64)) % 64;
        memmove(aligned, raw + 64, len);
        collect x = {0};
        CHECK(ember_open_buffer(aligned, len, 256, &m) == EMBER_OK);
        CHECK(ember_generate(m, "Once upon a time", 16, &greedy, collect_piece, &x) == EMBER_OK);
        CHECK(strcmp(x.text, a.text) == 0);
        ember_free(m);
        memmove(aligned + 1, aligned, len);
        collect y = {0};
        CHECK(ember_open_buffer(aligned + 1, len, 256, &m) == EMBER_OK);
        CHECK(ember_generate(m, "Once upon a time", 16, &greedy, collect_piece, &y) == EMBER_OK);
        CHECK(strcmp(y.text, a.text) == 0);
        ember_free(m);
        free(raw);
    }
    printf("capi: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
