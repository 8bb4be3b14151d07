/* generate MODEL PROMPT N: prints the greedy continuation of PROMPT, exactly what
 * `ember run MODEL -p PROMPT -n N --temp 0` prints on stdout.
 *
 *   cargo build --release -p ember-capi
 *   cc examples/c/generate.c -Icapi/include -Ltarget/release -lember -o generate
 *   LD_LIBRARY_PATH=target/release ./generate model.ember "Once upon a time" 32
 */
#include <stdio.h>
#include <stdlib.h>

#include "ember.h"

static int print_piece(void *user, uint32_t token, const char *text, size_t len) {
    (void)user;
    (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0; /* go on */
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT N\n", argv[0]);
        return 2;
    }
    char *end;
    long n = strtol(argv[3], &end, 10);
    if (*end != '\0' || n < 0 || n > 1000000) {
        fprintf(stderr, "N must be a token count, got %s\n", argv[3]);
        return 2;
    }
    ember_model *model = NULL;
    /* ctx 0: the model's context length, at most 2048. */
    if (ember_open(argv[1], 0, &model) != EMBER_OK) {
        fprintf(stderr, "error: %s\n", ember_last_error());
        return 1;
    }
    ember_sampling greedy = ember_sampling_greedy();
    ember_status status = ember_generate(model, argv[2], (uint32_t)n, &greedy, print_piece, NULL);
    if (status != EMBER_OK) {
        fprintf(stderr, "error: %s\n", ember_last_error());
        ember_free(model);
        return 1;
    }
    printf("\n"); /* as `ember run` ends its text */
    ember_free(model);
    return 0;
}
