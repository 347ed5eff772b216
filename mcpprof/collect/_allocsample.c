/* _allocsample: sampled allocation profiling for CPython 3.10-3.13 (GIL builds).
 *
 * Wraps the PYMEM_DOMAIN_MEM and PYMEM_DOMAIN_OBJ allocators (never RAW) and chains to whatever
 * was installed before (pymalloc, tracemalloc's hooks, ...). Sampling is by bytes, like tcmalloc,
 * Go and ddtrace's memalloc: a countdown of bytes drawn from an exponential distribution with mean
 * `interval_bytes`; the allocation that crosses it is sampled, so an allocation of s bytes is
 * sampled with probability p = 1 - exp(-s/T) and stands for s/p bytes and 1/p objects.
 *
 * A sample stores the Python stack (code objects + line numbers, innermost first) in an interned
 * stack table and the pointer in an open-addressing table, so free/realloc can remove it. The fast
 * paths are one indirect call plus a subtraction (alloc) or a load and a compare (free).
 *
 * MEM and OBJ allocators are called with the GIL held, so the state is one GIL-protected global.
 * While a stack is captured (which may allocate frame objects) a guard passes nested allocations
 * straight through, the cyclic GC is disabled and the error indicator is saved and restored. Any
 * internal failure skips the sample. Public C API only, except the unchecked thread-state getter
 * (_PyThreadState_UncheckedGet before 3.13, exported in the CPython headers).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "_allocsample_tables.h"

/* -- sampling --------------------------------------------------------------------------------- */

static PyThreadState *current_tstate(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#else
    return _PyThreadState_UncheckedGet();
#endif
}

static int walk_stack(PyThreadState *ts, frame_t *buf, int max, int *truncated)
{
    int n = 0;
    PyFrameObject *f = PyThreadState_GetFrame(ts);
    while (f != NULL && n < max) {
        PyCodeObject *code = PyFrame_GetCode(f);
        buf[n].code = (PyObject *)code;
        buf[n].line = PyFrame_GetLineNumber(f);
        n++;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    *truncated = f != NULL;
    Py_XDECREF(f);
    return n;
}

static void take_sample(void *ptr, size_t size)
{
    frame_t buf[MAX_FRAMES_LIMIT];
    int n = 0, truncated = 0;
    PyThreadState *ts = current_tstate();
    if (ts == NULL) {
        S.skipped++;
        return;
    }
    int gc_was_enabled = PyGC_Disable(); /* no collection (finalizers) inside an allocator */
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *et, *ev, *etb;
    PyErr_Fetch(&et, &ev, &etb);
#endif
    n = walk_stack(ts, buf, S.max_frames, &truncated);
    PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(et, ev, etb);
#endif
    if (gc_was_enabled)
        PyGC_Enable();
    int64_t id = stack_intern(buf, n, truncated);
    if (id < 0) {
        for (int k = 0; k < n; k++)
            Py_DECREF(buf[k].code);
        S.skipped++;
        return;
    }
    if (live_insert((uintptr_t)ptr, size, (uint32_t)id) < 0) {
        S.skipped++;
        return;
    }
    stack_t *s = S.stacks[id];
    double p = -expm1(-(double)size / S.interval);
    double w = p > 0.0 ? (double)size / p : (double)size;
    s->samples++;
    s->alloc_bytes += w;
    s->alloc_count += w / (double)size;
    S.samples++;
}

static void new_interval(void)
{
    S.seen_before += (uint64_t)(S.drawn - S.countdown);
    S.drawn = S.countdown = draw_interval();
}

static uint64_t bytes_seen(void)
{
    return S.running ? S.seen_before + (uint64_t)(S.drawn - S.countdown) : S.seen_before;
}

static __attribute__((noinline, cold)) void on_crossing(void *ptr, size_t size)
{
    if (S.guard || ptr == NULL)
        return; /* an allocation made while capturing: passed through untracked */
    S.guard = 1;
    take_sample(ptr, size);
    new_interval();
    S.guard = 0;
}

/* The whole fast path of an allocation: one flag test, one subtraction, one compare. */
#define COUNT_ALLOC(h, p, size)                                            \
    do {                                                                   \
        if ((h)->sampling && (S.countdown -= (int64_t)(size)) < 0)        \
            on_crossing((p), (size));                                      \
    } while (0)

static void *hook_malloc(void *ctx, size_t size)
{
    hook_t *h = (hook_t *)ctx;
    void *p = h->orig.malloc(h->orig.ctx, size);
    COUNT_ALLOC(h, p, size);
    return p;
}

static void *hook_calloc(void *ctx, size_t nelem, size_t elsize)
{
    hook_t *h = (hook_t *)ctx;
    void *p = h->orig.calloc(h->orig.ctx, nelem, elsize);
    COUNT_ALLOC(h, p, nelem * elsize);
    return p;
}

static void *hook_realloc(void *ctx, void *ptr, size_t new_size)
{
    hook_t *h = (hook_t *)ctx;
    live_t old;
    int was_sampled = 0;
    if (ptr != NULL && S.live_n)
        was_sampled = live_remove((uintptr_t)ptr, &old);
    void *p = h->orig.realloc(h->orig.ctx, ptr, new_size);
    if (p == NULL) {
        if (was_sampled && new_size != 0 && live_insert((uintptr_t)ptr, old.size, old.stack) == 0)
            S.freed_samples--; /* the old block is still there */
        return p;
    }
    COUNT_ALLOC(h, p, new_size);
    return p;
}

static __attribute__((noinline, cold)) void free_slow(void *ptr)
{
    if (ptr != NULL)
        live_remove((uintptr_t)ptr, NULL);
}

/* The miss path of a free: one load (nothing sampled is live) or a hash, a load and a compare
 * (the home slot is empty: at a load factor of at most 1/4, three frees in four); then a tail
 * call. Pass-through generations may look up too: they find nothing the active one left. */
static void hook_free(void *ctx, void *ptr)
{
    hook_t *h = (hook_t *)ctx;
    if (S.live_n && S.keys[live_home((uintptr_t)ptr)] != 0)
        free_slow(ptr);
    h->orig.free(h->orig.ctx, ptr);
}

/* -- install / uninstall ----------------------------------------------------------------------- */

static hook_t *make_hook(PyMemAllocatorDomain domain, PyMemAllocatorEx *ours)
{
    hook_t *h = calloc(1, sizeof(hook_t)); /* never freed: a hook above ours may still call it */
    if (h == NULL)
        return NULL;
    PyMem_GetAllocator(domain, &h->orig);
    while (h->orig.malloc == hook_malloc) /* our own pass-through hooks, put back by a hook that */
        h->orig = ((hook_t *)h->orig.ctx)->orig; /* stopped after us: skip them */
    ours->ctx = h;
    ours->malloc = hook_malloc;
    ours->calloc = hook_calloc;
    ours->realloc = hook_realloc;
    ours->free = hook_free;
    return h;
}

static int is_current(PyMemAllocatorDomain domain, hook_t *h)
{
    PyMemAllocatorEx cur;
    PyMem_GetAllocator(domain, &cur);
    return cur.malloc == hook_malloc && cur.ctx == h;
}

static void release_tables(void)
{
    uintptr_t *keys = S.keys;
    live_t *vals = S.vals;
    stack_t **stacks = S.stacks;
    size_t nstacks = S.nstacks;
    uint32_t *index = S.stack_index;
    S.keys = NULL, S.vals = NULL, S.live_n = 0, S.live_cap = 0;
    S.stacks = NULL, S.nstacks = 0, S.stacks_cap = 0, S.stack_index = NULL, S.index_cap = 0;
    free(keys);
    free(vals);
    free(index);
    for (size_t i = 0; i < nstacks; i++) {
        for (uint32_t k = 0; k < stacks[i]->nframes; k++)
            Py_DECREF(stacks[i]->frames[k].code);
        free(stacks[i]);
    }
    free(stacks);
}

static PyObject *do_stop(void)
{
    if (!S.running)
        Py_RETURN_FALSE;
    S.seen_before = bytes_seen();
    S.running = 0;
    S.mem->sampling = 0;
    S.obj->sampling = 0;
    S.drawn = S.countdown = INT64_MAX;
    int restored = 0;
    if (is_current(PYMEM_DOMAIN_MEM, S.mem) && is_current(PYMEM_DOMAIN_OBJ, S.obj)) {
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &S.mem->orig);
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &S.obj->orig);
        restored = 1;
    } /* else another hook sits on top of ours: ours stay in the chain, passing through */
    S.installed = 0;
    S.guard = 1;
    release_tables();
    S.guard = 0;
    return PyBool_FromLong(restored);
}

/* -- Python API ------------------------------------------------------------------------------- */

static PyObject *py_stop(PyObject *self, PyObject *noargs)
{
    return do_stop();
}

static PyObject *py_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"interval_bytes", "max_frames", "seed", NULL};
    double interval = 262144.0;
    int max_frames = 128;
    PyObject *seed = Py_None;
#ifdef Py_GIL_DISABLED
    PyErr_SetString(PyExc_RuntimeError, "allocation sampling needs a CPython build with the GIL");
    return NULL;
#endif
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|diO", kwlist, &interval, &max_frames, &seed))
        return NULL;
    if (!(interval >= 1.0) || interval > 1e15) {
        PyErr_SetString(PyExc_ValueError, "interval_bytes must be between 1 and 1e15");
        return NULL;
    }
    if (max_frames < 1 || max_frames > MAX_FRAMES_LIMIT) {
        PyErr_Format(PyExc_ValueError, "max_frames must be between 1 and %d", MAX_FRAMES_LIMIT);
        return NULL;
    }
    if (S.running) {
        PyErr_SetString(PyExc_RuntimeError, "allocation sampling is already running");
        return NULL;
    }
    uint64_t s;
    if (seed == Py_None) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        s = (uint64_t)t.tv_nsec ^ ((uint64_t)t.tv_sec << 30) ^ ((uint64_t)getpid() << 12);
    } else {
        s = (uint64_t)PyLong_AsUnsignedLongLongMask(seed);
        if (PyErr_Occurred())
            return NULL;
    }
    if (!S.atexit_registered) { /* stop before finalization: no sampling while the runtime dies */
        PyObject *atexit = PyImport_ImportModule("atexit");
        PyObject *stop = PyObject_GetAttrString(self, "stop");
        PyObject *r = (atexit && stop) ? PyObject_CallMethod(atexit, "register", "O", stop) : NULL;
        Py_XDECREF(atexit);
        Py_XDECREF(stop);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        S.atexit_registered = 1;
    }
    S.rng = s * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (S.rng == 0)
        S.rng = 1;
    S.interval = interval;
    S.max_frames = max_frames;
    S.seen_before = S.samples = S.skipped = S.freed_samples = 0;
    if (live_init(LIVE_MIN_BITS) < 0 || index_rebuild(1024) < 0) {
        free(S.keys), free(S.vals), S.keys = NULL, S.vals = NULL, S.live_cap = 0;
        return PyErr_NoMemory();
    }
    PyMemAllocatorEx mem, obj;
    hook_t *hm = make_hook(PYMEM_DOMAIN_MEM, &mem);
    hook_t *ho = make_hook(PYMEM_DOMAIN_OBJ, &obj);
    if (hm == NULL || ho == NULL) {
        free(hm), free(ho);
        release_tables();
        return PyErr_NoMemory();
    }
    S.drawn = S.countdown = draw_interval();
    S.guard = 0;
    hm->sampling = ho->sampling = 1;
    S.mem = hm, S.obj = ho;
    S.running = 1;
    S.installed = 1;
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    Py_RETURN_NONE;
}

static PyObject *py_is_running(PyObject *self, PyObject *noargs)
{
    return PyBool_FromLong(S.running);
}

#include "_allocsample_py.h"

static PyMethodDef methods[] = {
    {"start", (PyCFunction)(void (*)(void))py_start, METH_VARARGS | METH_KEYWORDS,
     "start(interval_bytes=262144, max_frames=128, seed=None)\n--\n\n"
     "Sample MEM/OBJ-domain allocations, one per `interval_bytes` on average (exponential intervals)."},
    {"stop", py_stop, METH_NOARGS,
     "stop()\n--\n\nStop sampling and drop every sample. True if our hooks were removed, False if "
     "another hook installed later sits on top (ours then pass through) or sampling was not running."},
    {"is_running", py_is_running, METH_NOARGS, "is_running()\n--\n\nTrue while sampling."},
    {"snapshot", py_snapshot, METH_NOARGS,
     "snapshot()\n--\n\nLive sampled allocations: [(size, weight_bytes, weight_count, frames)], frames "
     "a tuple of (filename, lineno, qualname), innermost first; weights are unbiased estimates."},
    {"allocated", py_allocated, METH_NOARGS,
     "allocated()\n--\n\nCumulative samples per stack since start: [(frames, samples, est_bytes, est_count)]."},
    {"stats", py_stats, METH_NOARGS, "stats()\n--\n\nCounters: samples, live, allocations seen, ..."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_allocsample",
    "Sampled allocation profiling (byte-interval Poisson sampling of the MEM and OBJ allocators).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__allocsample(void)
{
    return PyModule_Create(&module);
}
