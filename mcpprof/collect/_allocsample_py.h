/* _allocsample_py.h: what _allocsample.c returns to Python (snapshots, cumulative totals, stats),
 * built from its tables (included by it once: one translation unit). */

static PyObject *frame_tuple(const frame_t *f, PyObject *cache)
{
    PyObject *names = PyDict_GetItem(cache, f->code); /* borrowed: (filename, name) */
    if (names == NULL) {
        PyObject *fn = PyObject_GetAttrString(f->code, "co_filename");
        PyObject *nm = PyObject_HasAttrString(f->code, "co_qualname")
                           ? PyObject_GetAttrString(f->code, "co_qualname")
                           : PyObject_GetAttrString(f->code, "co_name");
        if (fn == NULL || nm == NULL) {
            Py_XDECREF(fn);
            Py_XDECREF(nm);
            return NULL;
        }
        names = PyTuple_Pack(2, fn, nm);
        Py_DECREF(fn);
        Py_DECREF(nm);
        if (names == NULL || PyDict_SetItem(cache, f->code, names) < 0) {
            Py_XDECREF(names);
            return NULL;
        }
        Py_DECREF(names); /* the cache holds it */
    }
    return Py_BuildValue("(OiO)", PyTuple_GET_ITEM(names, 0), f->line, PyTuple_GET_ITEM(names, 1));
}

static PyObject *stack_frames(uint32_t id, PyObject *stacks, PyObject *cache)
{
    PyObject *key = PyLong_FromUnsignedLong(id);
    if (key == NULL)
        return NULL;
    PyObject *t = PyDict_GetItem(stacks, key);
    if (t != NULL) {
        Py_DECREF(key);
        Py_INCREF(t);
        return t;
    }
    stack_t *s = S.stacks[id];
    t = PyTuple_New(s->nframes);
    for (uint32_t k = 0; t != NULL && k < s->nframes; k++) {
        PyObject *fr = frame_tuple(&s->frames[k], cache);
        if (fr == NULL)
            Py_CLEAR(t);
        else
            PyTuple_SET_ITEM(t, k, fr);
    }
    if (t != NULL && PyDict_SetItem(stacks, key, t) < 0)
        Py_CLEAR(t);
    Py_DECREF(key);
    return t;
}

typedef PyObject *(*build_fn)(PyObject *stacks, PyObject *cache, void *arg);

/* Run `build` with sampling paused for our own allocations and the GC off (no finalizer can
 * stop the sampler or free a sampled block half-way through). */
static PyObject *guarded(build_fn build, void *arg)
{
    int64_t saved = S.countdown;
    int gc_was_enabled = PyGC_Disable();
    S.guard = 1;
    PyObject *stacks = PyDict_New(), *cache = PyDict_New(), *out = NULL;
    if (stacks != NULL && cache != NULL)
        out = build(stacks, cache, arg);
    Py_XDECREF(stacks);
    Py_XDECREF(cache);
    S.guard = 0;
    S.countdown = saved;
    if (gc_was_enabled)
        PyGC_Enable();
    return out;
}

static PyObject *build_snapshot(PyObject *stacks, PyObject *cache, void *arg)
{
    size_t n = 0, cap = S.live_n;
    live_t *copy = cap ? malloc(cap * sizeof(live_t)) : NULL;
    if (cap && copy == NULL)
        return PyErr_NoMemory();
    for (size_t i = 0; i < S.live_cap && n < cap; i++)
        if (S.keys[i] != 0)
            copy[n++] = S.vals[i];
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < n; i++) {
        double size = (double)copy[i].size;
        double p = -expm1(-size / S.interval);
        double w = p > 0.0 ? size / p : size;
        PyObject *frames = stack_frames(copy[i].stack, stacks, cache);
        PyObject *row = frames ? Py_BuildValue("(nddN)", (Py_ssize_t)copy[i].size, w, w / size, frames) : NULL;
        if (row == NULL || PyList_Append(list, row) < 0)
            Py_CLEAR(list);
        Py_XDECREF(row);
    }
    free(copy);
    return list;
}

static PyObject *build_allocated(PyObject *stacks, PyObject *cache, void *arg)
{
    size_t n = S.nstacks;
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < n; i++) {
        stack_t *s = S.stacks[i];
        if (s->samples == 0)
            continue;
        PyObject *frames = stack_frames((uint32_t)i, stacks, cache);
        PyObject *row = frames ? Py_BuildValue("(NKdd)", frames, (unsigned long long)s->samples,
                                               s->alloc_bytes, s->alloc_count) : NULL;
        if (row == NULL || PyList_Append(list, row) < 0)
            Py_CLEAR(list);
        Py_XDECREF(row);
    }
    return list;
}

static PyObject *py_snapshot(PyObject *self, PyObject *noargs)
{
    if (!S.running)
        return PyList_New(0);
    return guarded(build_snapshot, NULL);
}

static PyObject *py_allocated(PyObject *self, PyObject *noargs)
{
    if (!S.running)
        return PyList_New(0);
    return guarded(build_allocated, NULL);
}

static PyObject *py_stats(PyObject *self, PyObject *noargs)
{
    size_t own = S.live_cap * (sizeof(uintptr_t) + sizeof(live_t)) + S.index_cap * sizeof(uint32_t) +
                 S.stacks_cap * sizeof(stack_t *);
    for (size_t i = 0; i < S.nstacks; i++)
        own += sizeof(stack_t) + S.stacks[i]->nframes * sizeof(frame_t);
    return Py_BuildValue("{s:O,s:d,s:i,s:K,s:K,s:n,s:n,s:K,s:K,s:n}",
                         "running", S.running ? Py_True : Py_False, "interval_bytes", S.interval,
                         "max_frames", S.max_frames,
                         "bytes_seen", (unsigned long long)bytes_seen(), "samples",
                         (unsigned long long)S.samples, "live", (Py_ssize_t)S.live_n, "stacks",
                         (Py_ssize_t)S.nstacks, "skipped", (unsigned long long)S.skipped,
                         "freed_samples", (unsigned long long)S.freed_samples, "own_bytes",
                         (Py_ssize_t)own);
}

