/* ember.h: the C API of Ember (libember, built by `cargo build --release -p ember-capi`).
 *
 *   ember_model *m;
 *   if (ember_open("model.ember", 0, &m) != EMBER_OK) { fprintf(stderr, "%s\n", ember_last_error()); return 1; }
 *   ember_generate(m, "Once upon a time", 64, NULL, print_piece, NULL);   // NULL sampling: greedy
 *   ember_free(m);
 *
 * Every function returns an ember_status (EMBER_OK is 0); on an error, ember_last_error()
 * says what went wrong in one line (valid until the next call on the same thread). Every
 * pointer argument is checked (NULL: EMBER_ERR_NULL); no Rust panic crosses the boundary
 * (EMBER_ERR_INTERNAL instead). A model handle may be used from one thread at a time;
 * separate handles are independent.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ember_status {
    EMBER_OK = 0,
    EMBER_ERR_NULL = 1,      /* a pointer argument was NULL */
    EMBER_ERR_IO = 2,        /* the file cannot be read */
    EMBER_ERR_FORMAT = 3,    /* not a valid .ember file */
    EMBER_ERR_MODEL = 4,     /* the model or its tokenizer cannot be loaded */
    EMBER_ERR_ARGUMENT = 5,  /* a bad value (not UTF-8, out of range, empty prompt) */
    EMBER_ERR_CONTEXT = 6,   /* the prompt does not fit in the context left */
    EMBER_ERR_BUFFER = 7,    /* an output buffer is too small (the size needed is reported) */
    EMBER_ERR_INTERNAL = 8   /* a bug in Ember (a caught panic) */
} ember_status;

/* A loaded model with its tokenizer and one session (KV cache sized at open). */
typedef struct ember_model ember_model;

/* Sampler settings, as `ember run`'s flags. temperature 0 is greedy. */
typedef struct ember_sampling {
    float temperature;    /* 0: greedy */
    int32_t top_k;        /* <= 0: all tokens */
    float top_p;          /* in [0, 1]; 1: off */
    float min_p;          /* in [0, 1]; 0: off */
    float repeat_penalty; /* > 0; 1: off (over the last 64 tokens) */
    uint64_t seed;        /* the same seed gives the same tokens */
} ember_sampling;

/* Called for each generated token with its text (may be empty while a character's bytes
 * are incomplete, or while text that may start a stop string is held back). After the last
 * token, held-back text comes with token EMBER_NO_TOKEN. Return 0 to go on, anything else
 * to stop generating. `text` is not NUL-terminated and is valid only during the call. */
#define EMBER_NO_TOKEN UINT32_MAX
typedef int (*ember_token_fn)(void *user, uint32_t token, const char *text, size_t len);

/* Ember's CLI defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, no penalty). */
ember_sampling ember_sampling_default(void);
/* Greedy decoding. */
ember_sampling ember_sampling_greedy(void);

/* Opens a .ember file (memory-mapped). ctx: KV cache positions (0: the model's context
 * length, at most 2048). */
ember_status ember_open(const char *path, uint32_t ctx, ember_model **out);

/* Opens a model from bytes in memory (say, a flash partition or an embedded array). A
 * buffer aligned to 64 bytes is used in place and must stay valid and unchanged until
 * ember_free; any other buffer is copied. */
ember_status ember_open_buffer(const uint8_t *data, size_t len, uint32_t ctx, ember_model **out);

/* Token ids of `text` (NUL-terminated UTF-8), as `ember tokenize`: with the BOS the
 * tokenizer adds. Writes up to `cap` ids to `ids` (may be NULL when cap is 0) and the count
 * to *n; EMBER_ERR_BUFFER when cap is smaller than the count. */
ember_status ember_tokenize(const ember_model *m, const char *text, uint32_t *ids, size_t cap, size_t *n);

/* Feeds `prompt` (NUL-terminated UTF-8; the first prompt after open or reset starts with
 * BOS, as `ember run -p`) and generates up to n_predict tokens, calling `on_token` for
 * each. Stops early at an end-of-generation token or when on_token returns nonzero.
 * sampling NULL: greedy. The session keeps its tokens: a later call continues the text
 * (call ember_reset to start over). With greedy sampling, the text is what
 * `ember run MODEL -p PROMPT -n N --temp 0` prints. */
ember_status ember_generate(ember_model *m, const char *prompt, uint32_t n_predict,
                            const ember_sampling *sampling, ember_token_fn on_token, void *user);

/* Forgets the session's tokens. */
ember_status ember_reset(ember_model *m);

/* Frees the model (NULL is allowed). */
void ember_free(ember_model *m);

/* The last error on this thread, one line ("" if none). */
const char *ember_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_H */
