/* _walk_caches.h: the C walk's tables in front of the sampler's dicts (see _walk.c). Included once by _walk.c. */

/* -- C caches in front of the sampler's tables ---------------------------------------------------
 * A tick used to box every frame's (id(code), f_lasti) as two ints for two dict lookups, and then
 * build a tuple of the frame ids for a third: on a cold cache, most of a tick. Two open-addressing
 * tables answer the same questions from flat memory:
 *   locations  (code pointer, f_lasti) -> frame id, copied from locs (the sampler's location cache);
 *   stacks     frame ids, leaf first -> stack id, copied from stack_ids (or the new_stack callback).
 * Each table belongs to one dict of the sampler's (held, so its identity cannot be reused) and is
 * emptied when a call brings another dict (tables cleared, another sampler). A code pointer stays
 * valid as long as its entry in locs does (the sampler keeps those code objects alive). Frame ids
 * are kept as C longs (the sampler's ids are small ints), stack ids as the ints themselves. Bounded: past LOC_MAX / STACK_MAX entries a table starts
 * over. */

#define LOC_MIN 1024
#define LOC_MAX (1 << 17)
#define STACK_MIN 256
#define STACK_MAX (1 << 14)

/* idle: whether the code is an idle leaf (1/0; -1 not known yet): a copy of the sampler's idle cache */
typedef struct { void *code; int lasti; signed char idle; long fid; } LocSlot;  /* empty: code NULL */
typedef struct { Py_uhash_t h; Py_ssize_t n; long *fids; PyObject *sid; } StackSlot;  /* empty: sid NULL */

static struct { PyObject *owner; LocSlot *slots; Py_ssize_t cap, used; } LC;
static struct { PyObject *owner; StackSlot *slots; Py_ssize_t cap, used; } SC;

static Py_ssize_t loc_slot(void *code, int lasti, Py_ssize_t cap)
{
    uint64_t h = ((uint64_t)(uintptr_t)code >> 4) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(unsigned)lasti * 0xC2B2AE3D27D4EB4FULL;
    return (Py_ssize_t)((h ^ (h >> 31)) & (uint64_t)(cap - 1));
}

static void loc_empty(void)
{
    if (LC.slots != NULL)
        memset(LC.slots, 0, LC.cap * sizeof(LocSlot));
    LC.used = 0;
}

/* A table's first slots, and its owner: a table that held another dict's entries is emptied with
 * empty() first. -1 with MemoryError set. */
static int table_bind(void **slots, Py_ssize_t *cap, Py_ssize_t min_cap, size_t slot_size, PyObject **owner,
                      PyObject *dict, void (*empty)(void))
{
    if (*slots == NULL) {
        *slots = PyMem_Calloc(min_cap, slot_size);
        if (*slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *cap = min_cap;
    }
    if (*owner != dict) {
        empty();
        Py_XSETREF(*owner, Py_NewRef(dict));
    }
    return 0;
}

/* the location table, for locs */
static int loc_bind(PyObject *locs)
{
    return table_bind((void **)&LC.slots, &LC.cap, LOC_MIN, sizeof(LocSlot), &LC.owner, locs, loc_empty);
}

static LocSlot *loc_find(void *code, int lasti)  /* the slot of (code, lasti), NULL if none */
{
    Py_ssize_t mask = LC.cap - 1;
    for (Py_ssize_t i = loc_slot(code, lasti, LC.cap); LC.slots[i].code != NULL; i = (i + 1) & mask)
        if (LC.slots[i].code == code && LC.slots[i].lasti == lasti)
            return &LC.slots[i];
    return NULL;
}

static int loc_get(void *code, int lasti, long *fid)  /* 1 and *fid if there, else 0 */
{
    LocSlot *slot = loc_find(code, lasti);
    if (slot == NULL)
        return 0;
    *fid = slot->fid;
    return 1;
}

static void loc_insert(LocSlot *slots, Py_ssize_t cap, LocSlot e)
{
    Py_ssize_t i = loc_slot(e.code, e.lasti, cap);
    while (slots[i].code != NULL)
        i = (i + 1) & (cap - 1);
    slots[i] = e;
}

/* Room for one more entry in a table kept at most half full: twice the slots (move() carries the
 * entries over), or, past max_cap or without memory, empty() starts it over. */
static void table_room(void **slots, Py_ssize_t *cap, Py_ssize_t used, Py_ssize_t max_cap, size_t slot_size,
                       void (*move)(void *from, Py_ssize_t from_cap, void *to, Py_ssize_t to_cap),
                       void (*empty)(void))
{
    if ((used + 1) * 2 <= *cap)
        return;
    void *bigger = *cap < max_cap ? PyMem_Calloc(2 * *cap, slot_size) : NULL;
    if (bigger == NULL) {
        empty();
        return;
    }
    move(*slots, *cap, bigger, 2 * *cap);
    PyMem_Free(*slots);
    *slots = bigger;
    *cap *= 2;
}

static void loc_move(void *from, Py_ssize_t from_cap, void *to, Py_ssize_t to_cap)
{
    for (Py_ssize_t i = 0; i < from_cap; i++)
        if (((LocSlot *)from)[i].code != NULL)
            loc_insert(to, to_cap, ((LocSlot *)from)[i]);
}

static void loc_put(void *code, int lasti, long fid)
{
    table_room((void **)&LC.slots, &LC.cap, LC.used, LOC_MAX, sizeof(LocSlot), loc_move, loc_empty);
    LocSlot e = {code, lasti, -1, fid};
    loc_insert(LC.slots, LC.cap, e);
    LC.used++;
}

static void stack_empty(void)
{
    for (Py_ssize_t i = 0; i < SC.cap; i++) {
        Py_XDECREF(SC.slots[i].sid);
        PyMem_Free(SC.slots[i].fids);
    }
    if (SC.slots != NULL)
        memset(SC.slots, 0, SC.cap * sizeof(StackSlot));
    SC.used = 0;
}

static int stack_bind(PyObject *stack_ids)
{
    return table_bind((void **)&SC.slots, &SC.cap, STACK_MIN, sizeof(StackSlot), &SC.owner, stack_ids, stack_empty);
}

static Py_uhash_t fids_hash(const long *fids, Py_ssize_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (uint64_t)fids[i]) * 0x100000001b3ULL;
    return (Py_uhash_t)(h ^ (h >> 29));
}

static PyObject *stack_get(const long *fids, Py_ssize_t n, Py_uhash_t h)  /* borrowed, NULL if not there */
{
    Py_ssize_t mask = SC.cap - 1;
    for (Py_ssize_t i = (Py_ssize_t)(h & mask); SC.slots[i].sid != NULL; i = (i + 1) & mask) {
        StackSlot *e = &SC.slots[i];
        if (e->h == h && e->n == n && memcmp(e->fids, fids, n * sizeof(long)) == 0)
            return e->sid;
    }
    return NULL;
}

static void stack_insert(StackSlot *slots, Py_ssize_t cap, StackSlot e)
{
    Py_ssize_t i = (Py_ssize_t)(e.h & (cap - 1));
    while (slots[i].sid != NULL)
        i = (i + 1) & (cap - 1);
    slots[i] = e;
}

static void stack_move(void *from, Py_ssize_t from_cap, void *to, Py_ssize_t to_cap)
{
    for (Py_ssize_t i = 0; i < from_cap; i++)
        if (((StackSlot *)from)[i].sid != NULL)
            stack_insert(to, to_cap, ((StackSlot *)from)[i]);
}

static void stack_put(const long *fids, Py_ssize_t n, Py_uhash_t h, PyObject *sid)
{
    table_room((void **)&SC.slots, &SC.cap, SC.used, STACK_MAX, sizeof(StackSlot), stack_move, stack_empty);
    long *copy = PyMem_Malloc((n ? n : 1) * sizeof(long));
    if (copy == NULL)
        return;  /* not cached: found the slow way next time */
    memcpy(copy, fids, n * sizeof(long));
    StackSlot e = {h, n, copy, Py_NewRef(sid)};
    stack_insert(SC.slots, SC.cap, e);
    SC.used++;
}
