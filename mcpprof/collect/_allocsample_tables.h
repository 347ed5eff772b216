/* _allocsample_tables.h: the state, the random intervals, the live-pointer table and the interned
 * stack table of _allocsample.c (included by it once: one translation unit). */
#define MAX_FRAMES_LIMIT 512
#define LIVE_MIN_BITS 10
#define STACK_LIMIT 1000000

typedef struct {
    PyMemAllocatorEx orig; /* the allocator we chain to */
    int sampling;          /* 1 while this generation of hooks is the active sampler */
} hook_t;

typedef struct {
    PyObject *code; /* strong reference */
    int line;
} frame_t;

typedef struct {
    uint64_t hash;
    uint32_t nframes;
    uint32_t truncated;
    uint64_t samples;
    double alloc_bytes; /* estimated bytes allocated at this stack since start */
    double alloc_count;
    frame_t frames[];   /* innermost first */
} stack_t;

typedef struct {
    size_t size;
    uint32_t stack;
} live_t;

static struct {
    int64_t countdown;
    int guard;
    int running;
    double interval;
    int max_frames;
    uint64_t rng;
    hook_t *mem, *obj; /* the current generation (NULL when never started) */
    int installed;     /* our current generation is somewhere in the chain */
    /* live sampled allocations */
    uintptr_t *keys;
    live_t *vals;
    size_t live_cap, live_n;
    unsigned live_shift;
    /* interned stacks */
    stack_t **stacks;
    size_t nstacks, stacks_cap;
    uint32_t *stack_index; /* open addressing: index + 1, 0 = empty */
    size_t index_cap;
    /* counters (bytes seen are derived from the countdown: nothing extra on the fast path) */
    int64_t drawn;      /* the current interval */
    uint64_t seen_before; /* bytes seen in the completed intervals */
    uint64_t samples, skipped, freed_samples;
    int atexit_registered;
} S;

/* -- random numbers ------------------------------------------------------------------------- */

static uint64_t rng_next(void)
{
    uint64_t x = S.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    S.rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static int64_t draw_interval(void)
{
    double u = ((double)(rng_next() >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double v = -log(u) * S.interval;
    if (v < 1.0)
        v = 1.0;
    if (v > 4.0e18)
        v = 4.0e18;
    return (int64_t)v;
}

/* -- live table: pointer -> (size, stack) ---------------------------------------------------- */

static inline size_t live_home(uintptr_t p)
{
    return (size_t)(((uint64_t)p * 0x9E3779B97F4A7C15ULL) >> S.live_shift);
}

static int live_init(unsigned bits)
{
    size_t cap = (size_t)1 << bits;
    uintptr_t *keys = calloc(cap, sizeof(uintptr_t));
    live_t *vals = calloc(cap, sizeof(live_t));
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    S.keys = keys;
    S.vals = vals;
    S.live_cap = cap;
    S.live_shift = 64 - bits;
    S.live_n = 0;
    return 0;
}

static void live_put(uintptr_t p, size_t size, uint32_t stack)
{
    size_t mask = S.live_cap - 1, i = live_home(p);
    while (S.keys[i] != 0 && S.keys[i] != p)
        i = (i + 1) & mask;
    if (S.keys[i] == 0)
        S.live_n++;
    S.keys[i] = p;
    S.vals[i].size = size;
    S.vals[i].stack = stack;
}

static int live_grow(void)
{
    uintptr_t *okeys = S.keys;
    live_t *ovals = S.vals;
    size_t ocap = S.live_cap;
    unsigned bits = 64 - S.live_shift + 1;
    if (live_init(bits) < 0) {
        S.keys = okeys, S.vals = ovals, S.live_cap = ocap, S.live_shift = 64 - (bits - 1);
        return -1;
    }
    for (size_t i = 0; i < ocap; i++)
        if (okeys[i] != 0)
            live_put(okeys[i], ovals[i].size, ovals[i].stack);
    free(okeys);
    free(ovals);
    return 0;
}

static int live_insert(uintptr_t p, size_t size, uint32_t stack)
{
    if ((S.live_n + 1) * 4 > S.live_cap && live_grow() < 0)
        return -1; /* keep the load factor at most 1/4: a miss is then almost always one probe */
    live_put(p, size, stack);
    return 0;
}

/* Remove `p` if it is a sampled allocation (backward-shift deletion keeps misses short). */
static int live_remove(uintptr_t p, live_t *out)
{
    size_t mask = S.live_cap - 1, i = live_home(p);
    uintptr_t k;
    while ((k = S.keys[i]) != p) {
        if (k == 0)
            return 0;
        i = (i + 1) & mask;
    }
    if (out)
        *out = S.vals[i];
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (S.keys[j] == 0)
            break;
        size_t h = live_home(S.keys[j]);
        int stays = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            S.keys[i] = S.keys[j];
            S.vals[i] = S.vals[j];
            i = j;
        }
    }
    S.keys[i] = 0;
    S.live_n--;
    S.freed_samples++;
    return 1;
}

/* -- stack table ------------------------------------------------------------------------------ */

static uint64_t hash_frames(const frame_t *f, int n)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h = (h ^ (uint64_t)(uintptr_t)f[i].code) * 1099511628211ULL;
        h = (h ^ (uint64_t)(uint32_t)f[i].line) * 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int index_rebuild(size_t cap)
{
    uint32_t *idx = calloc(cap, sizeof(uint32_t));
    if (idx == NULL)
        return -1;
    for (size_t s = 0; s < S.nstacks; s++) {
        size_t i = (size_t)S.stacks[s]->hash & (cap - 1);
        while (idx[i] != 0)
            i = (i + 1) & (cap - 1);
        idx[i] = (uint32_t)(s + 1);
    }
    free(S.stack_index);
    S.stack_index = idx;
    S.index_cap = cap;
    return 0;
}

/* The id of the stack `f[0:n]`; takes over the references in `f` (released if it is known). */
static int64_t stack_intern(frame_t *f, int n, int truncated)
{
    uint64_t h = hash_frames(f, n);
    size_t mask = S.index_cap - 1, i = (size_t)h & mask;
    uint32_t e;
    while ((e = S.stack_index[i]) != 0) {
        stack_t *s = S.stacks[e - 1];
        if (s->hash == h && s->nframes == (uint32_t)n &&
            memcmp(s->frames, f, sizeof(frame_t) * (size_t)n) == 0) {
            for (int k = 0; k < n; k++)
                Py_DECREF(f[k].code);
            return (int64_t)(e - 1);
        }
        i = (i + 1) & mask;
    }
    if (S.nstacks >= STACK_LIMIT)
        return -1;
    if (S.nstacks == S.stacks_cap) {
        size_t cap = S.stacks_cap ? S.stacks_cap * 2 : 256;
        stack_t **grown = realloc(S.stacks, cap * sizeof(stack_t *));
        if (grown == NULL)
            return -1;
        S.stacks = grown;
        S.stacks_cap = cap;
    }
    if ((S.nstacks + 1) * 2 > S.index_cap) {
        if (index_rebuild(S.index_cap * 2) < 0)
            return -1;
        mask = S.index_cap - 1;
        i = (size_t)h & mask;
        while (S.stack_index[i] != 0)
            i = (i + 1) & mask;
    }
    stack_t *s = malloc(sizeof(stack_t) + sizeof(frame_t) * (size_t)n);
    if (s == NULL)
        return -1;
    s->hash = h;
    s->nframes = (uint32_t)n;
    s->truncated = (uint32_t)truncated;
    s->samples = 0;
    s->alloc_bytes = s->alloc_count = 0.0;
    if (n)
        memcpy(s->frames, f, sizeof(frame_t) * (size_t)n);
    S.stacks[S.nstacks] = s;
    S.stack_index[i] = (uint32_t)(S.nstacks + 1);
    return (int64_t)S.nstacks++;
}
