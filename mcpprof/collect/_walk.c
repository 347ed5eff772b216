/* _walk: the sampler's stack walk and tick in C (mcpprof.collect.sampler).
 *
 * An optional accelerator, built by setup.py with optional=True; where it is missing the sampler
 * walks frames in Python (a raw (id(code), f_lasti) key and a cache of them). Two functions:
 *
 *   stack_key(frame, locs)  the frame ids of frame and its callers from the sampler's location
 *                           cache (locs[id(code)][f_lasti]), root first: the stack table's key;
 *                           None if a location is not cached yet.
 *   sample_threads(...)     the sampler's per-thread loop for every thread whose sample needs
 *                           nothing new (see sample_threads below); the others are left to Python.
 *
 * Both read locations and stacks through flat tables in front of the sampler's dicts
 * (_walk_caches.h).
 *
 * Public C API (PyFrame_GetCode / GetLasti / GetBack; f_lasti on 3.10), and on 3.11-3.12 the
 * interpreter's frame chain for stacks whose locations are all known (fast_fids); runs on the
 * sampler's tick.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <time.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
/* 3.11 and 3.12: the interpreter's frame chain, read without making a frame object per caller
 * (PyFrame_GetBack makes one for every caller that has none; the server then frees them) */
#define FAST_WALK 1
#define Py_BUILD_CORE
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#endif

#if PY_VERSION_HEX >= 0x030B0000
#define LASTI(f) PyFrame_GetLasti(f)
#else
#define LASTI(f) ((f)->f_lasti < 0 ? -1 : (f)->f_lasti * (int)sizeof(_Py_CODEUNIT))
#endif

#define SMALL 128

/* double the buffer *items (holding n items; small is the caller's stack buffer); -1 with
 * MemoryError set and *items unchanged on failure */
static int grow(long **items, long *small, Py_ssize_t n, Py_ssize_t *cap)
{
    long *bigger = PyMem_Malloc(2 * *cap * sizeof(long));
    if (bigger == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(bigger, *items, n * sizeof(long));
    if (*items != small)
        PyMem_Free(*items);
    *items = bigger;
    *cap *= 2;
    return 0;
}

/* locs[code_id][lasti] (borrowed), NULL if missing (or on error, set) */
static PyObject *cached_fid(PyObject *locs, PyObject *code_id, PyObject *lasti)
{
    PyObject *by_lasti = PyDict_GetItemWithError(locs, code_id);
    return by_lasti != NULL && PyDict_Check(by_lasti) ? PyDict_GetItemWithError(by_lasti, lasti) : NULL;
}

#include "_walk_caches.h"

/* The frame id cached for (code, lasti): the location table, else locs (copied into the table),
 * else resolve(f), which interns the location into locs. 1 and *fid if cached, 0 if not (a full
 * table, or an entry that is not an int), -1 on error. */
static int frame_id(PyFrameObject *f, PyCodeObject *code, int lasti, PyObject *locs, PyObject *resolve, long *fid)
{
    if (LC.owner == locs && loc_get(code, lasti, fid))
        return 1;
    PyObject *code_id = PyLong_FromVoidPtr(code), *lasti_o = PyLong_FromLong(lasti), *found = NULL;
    if (code_id != NULL && lasti_o != NULL) {
        found = cached_fid(locs, code_id, lasti_o);
        if (found == NULL && resolve != NULL && !PyErr_Occurred()) {
            PyObject *res = PyObject_CallOneArg(resolve, (PyObject *)f);
            if (res != NULL && res != Py_None)
                found = cached_fid(locs, code_id, lasti_o);  /* now cached, unless it could not be */
            Py_XDECREF(res);
        }
    }
    Py_XDECREF(code_id);
    Py_XDECREF(lasti_o);
    if (found == NULL || !PyLong_CheckExact(found))
        return PyErr_Occurred() ? -1 : 0;
    *fid = PyLong_AsLong(found);  /* locs holds found: read before anything else runs */
    if (*fid == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (loc_bind(locs) == 0)  /* (the callback may have run another sampler's walk) */
        loc_put(code, lasti, *fid);
    else
        PyErr_Clear();  /* no memory for the table: the dict answers next time */
    return 1;
}

#ifdef FAST_WALK
/* The walk below for a stack whose every location is in the location table, in C alone: the
 * interpreter frames of frame and its callers, read as PyFrame_GetBack would go (a frame object's
 * f_back first, else the previous frame) and PyFrame_GetLasti would count. Nothing here runs
 * Python code, so the frames cannot change under it. PyFrame_GetBack also skips incomplete frames
 * (still in their prologue); their offset is one no complete frame has, so no location the table
 * holds matches one (the table is filled from complete frames only), and the walk below handles
 * it, without reading every code object to tell. 1 with the ids (as walk_fids), 0 at the first
 * location not in the table (nothing returned), -1 on error. */
static int fast_fids(PyFrameObject *top, long *small, long **out, Py_ssize_t *n_out)
{
    long *fids = small;
    Py_ssize_t n = 0, cap = SMALL;
    PyFrameObject *fo = top;
    _PyInterpreterFrame *f = top->f_frame;
    while (f != NULL) {
        int lasti = _PyInterpreterFrame_LASTI(f);
        lasti = lasti < 0 ? -1 : lasti * (int)sizeof(_Py_CODEUNIT);
        if ((n == cap && grow(&fids, small, n, &cap) < 0) || !loc_get(f->f_code, lasti, &fids[n])) {
            if (fids != small)
                PyMem_Free(fids);
            return PyErr_Occurred() ? -1 : 0;
        }
        n++;
        if (fo == NULL)
            fo = f->frame_obj;
        if (fo != NULL && fo->f_back != NULL) {
            fo = fo->f_back;
            f = fo->f_frame;
            continue;
        }
        f = f->previous;
        fo = NULL;
    }
    *out = fids;
    *n_out = n;
    return 1;
}
#endif

/* The frame ids of frame and its callers, leaf first: *out holds *n of them (small, the caller's
 * buffer of SMALL, or one allocated here for the caller to free). 1 if every location is cached,
 * 0 if one is not (nothing returned), -1 on error. */
static int walk_fids(PyObject *frame, PyObject *locs, PyObject *resolve, long *small, long **out, Py_ssize_t *n_out)
{
    long *fids = small;
    Py_ssize_t n = 0, cap = SMALL;
    int r = 1;
    if (loc_bind(locs) < 0)
        return -1;
#ifdef FAST_WALK
    if (LC.owner == locs && PyFrame_Check(frame)) {
        r = fast_fids((PyFrameObject *)frame, small, out, n_out);
        if (r != 0)
            return r;
        r = 1;  /* a location to intern: the walk below, through the callback */
    }
#endif
    PyFrameObject *f = (PyFrameObject *)Py_NewRef(frame);
    while (f != NULL) {
        PyCodeObject *code = PyFrame_GetCode(f);
        r = n == cap && grow(&fids, small, n, &cap) < 0 ? -1 : frame_id(f, code, LASTI(f), locs, resolve, &fids[n]);
        Py_DECREF(code);
        if (r != 1) {
            Py_DECREF(f);
            break;
        }
        n++;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    if (r != 1) {
        if (fids != small)
            PyMem_Free(fids);
        return r;
    }
    *out = fids;
    *n_out = n;
    return 1;
}

static PyObject *key_of(const long *fids, Py_ssize_t n)  /* the stack table's key: root first */
{
    PyObject *key = PyTuple_New(n);
    for (Py_ssize_t i = 0; key != NULL && i < n; i++) {
        PyObject *fid = PyLong_FromLong(fids[n - 1 - i]);
        if (fid == NULL)
            Py_CLEAR(key);
        else
            PyTuple_SET_ITEM(key, i, fid);
    }
    return key;
}

/* stack_key(frame, locs, resolve=None): the frame ids of frame and its callers from the location
 * cache, root first (the key of the sampler's stack table), or None if a location is not cached.
 * resolve(f), if given, is called for a frame whose location is not cached; it caches it (or
 * returns None when the sampler's tables are full: then the key is None). */
static PyObject *stack_key(PyObject *frame, PyObject *locs, PyObject *resolve)
{
    long small[SMALL], *fids;
    Py_ssize_t n;
    int r = walk_fids(frame, locs, resolve, small, &fids, &n);
    if (r <= 0)
        return r < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *key = key_of(fids, n);
    if (fids != small)
        PyMem_Free(fids);
    return key;
}

static PyObject *walk_stack_key(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 3 || !PyFrame_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "stack_key(frame, locs: dict, resolve=None)");
        return NULL;
    }
    return stack_key(args[0], args[1], nargs == 3 && args[2] != Py_None ? args[2] : NULL);
}


/* -- the tick ------------------------------------------------------------------------------------ */

/* The arguments of sample_threads, in this order (see the Python tick in mcpprof/collect/tick.py). */
enum {
    A_FRAMES, A_TAGS, A_UNTAGGED, A_TSTATE, A_OWN_THREADS, A_OWN, A_MAIN, A_MAIN_CPU, A_WALL,
    A_LOCS, A_RESOLVE, A_STACK_IDS, A_NEW_STACK, A_IDLE, A_IDLE_OF, A_NAMES, A_LCACHE, A_MAKE_LABELS, A_AGG,
    A_MAX_KEYS, A_OVF_SID, A_HOOK, A_CLOCKS, A_SLOW, A_ERRORS, N_ARGS
};

typedef struct {
    PyObject *tags, *untagged, *tstate, *locs, *resolve, *stack_ids, *new_stack, *idle, *idle_of, *names, *lcache,
        *make_labels, *agg, *hook, *clocks, *errors;
    Py_ssize_t max_keys;
    int have_main_cpu;
    unsigned long long main;
    long long main_cpu, wall;
    long ovf_sid;
} Tick;

static PyObject *str_labels;

/* list[i] = v, stealing v (never NULL) */
static void set_item(PyObject *list, Py_ssize_t i, PyObject *v)
{
    PyObject *old = PyList_GET_ITEM(list, i);
    PyList_SET_ITEM(list, i, v);
    Py_XDECREF(old);
}

/* list[i] += d for an int item; -1 with an error set on failure */
static int add_into(PyObject *list, Py_ssize_t i, long long d)
{
    if (d == 0)
        return 0;
    long long v = PyLong_AsLongLong(PyList_GET_ITEM(list, i));
    if (v == -1 && PyErr_Occurred())
        return -1;
    PyObject *nv = PyLong_FromLongLong(v + d);
    if (nv == NULL)
        return -1;
    set_item(list, i, nv);
    return 0;
}

/* moves the exception set to the errors list; -1 if that failed too (the error stays set) */
static int note_error(PyObject *errors)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    int failed = value == NULL || PyList_Append(errors, value) < 0;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return failed ? -1 : 0;
}

/* hook(ident, sid, labels, wall, cpu); its exception goes to the errors list, never further */
static void call_hook(Tick *t, PyObject *ident, PyObject *sid, PyObject *labels, long long wall, long long cpu)
{
    PyObject *w = PyLong_FromLongLong(wall), *c = PyLong_FromLongLong(cpu);
    if (w != NULL && c != NULL) {
        PyObject *argv[5] = {ident, sid, labels, w, c};
        Py_XDECREF(PyObject_Vectorcall(t->hook, argv, 5, NULL));
    }
    Py_XDECREF(w);
    Py_XDECREF(c);
    if (PyErr_Occurred() && note_error(t->errors) < 0)
        PyErr_Clear();
}

static int is_sid(PyObject *o, long sid)
{
    return PyLong_CheckExact(o) && PyLong_AsLong(o) == sid;
}

/* the stack id of top's stack (a new reference), interning a new location or stack through the
 * sampler's callbacks; None if the tables are full (Python then takes the overflow stack) */
static PyObject *stack_id(Tick *t, PyObject *top)
{
    long small[SMALL], *fids;
    Py_ssize_t n;
    PyObject *sid = NULL;
    int r = walk_fids(top, t->locs, t->resolve, small, &fids, &n);
    if (r <= 0)
        return r < 0 ? NULL : Py_NewRef(Py_None);
    Py_uhash_t h = fids_hash(fids, n);
    if (stack_bind(t->stack_ids) == 0 && (sid = stack_get(fids, n, h)) != NULL) {
        Py_INCREF(sid);
    } else if (!PyErr_Occurred()) {
        PyObject *key = key_of(fids, n);
        if (key != NULL) {
            sid = PyDict_GetItemWithError(t->stack_ids, key);
            if (sid != NULL)
                Py_INCREF(sid);
            else if (!PyErr_Occurred())
                sid = PyObject_CallOneArg(t->new_stack, key);
            Py_DECREF(key);
        }
        if (sid != NULL && PyLong_CheckExact(sid) && stack_bind(t->stack_ids) == 0)
            stack_put(fids, n, h, sid);
        else if (PyErr_Occurred() && sid != NULL)
            PyErr_Clear();  /* not cached (no memory): found the slow way next time */
    }
    if (fids != small)
        PyMem_Free(fids);
    return sid;
}

static int sample_at(Tick *t, PyObject *ident_o, PyObject *top, PyObject *st, PyObject *sid, int walked, int lasti,
                     long long cur, long long cpu);

/* whether top's code is an idle leaf (the sampler's cache by id(code), filled through idle_of(code));
 * -1 on error */
static int idle_rule(Tick *t, PyObject *top, int lasti)
{
    PyCodeObject *code = PyFrame_GetCode((PyFrameObject *)top);
    LocSlot *slot = LC.owner == t->locs ? loc_find(code, lasti) : NULL;  /* the walk just read it */
    if (slot != NULL && slot->idle >= 0) {
        Py_DECREF(code);
        return slot->idle;
    }
    PyObject *code_id = PyLong_FromVoidPtr(code), *entry = NULL;
    if (code_id != NULL) {
        entry = PyDict_GetItemWithError(t->idle, code_id);
        Py_DECREF(code_id);
    }
    int idle = -1;
    if (entry != NULL && PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 2) {
        idle = PyObject_IsTrue(PyTuple_GET_ITEM(entry, 1));
    } else if (!PyErr_Occurred()) {
        PyObject *r = PyObject_CallOneArg(t->idle_of, (PyObject *)code);
        idle = r != NULL ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
    }
    /* found again: the callback may have run another sampler's walk, which moves the table */
    slot = idle >= 0 && LC.owner == t->locs ? loc_find(code, lasti) : NULL;
    if (slot != NULL)
        slot->idle = (signed char)idle;
    Py_DECREF(code);
    return idle;
}

/* The sampler's per-thread step for one thread (tick.py's loop body): 1 if sampled, 2 if sampled
 * on the overflow stack, 0 if it needs something new (its state, CPU clock or name, room in a full
 * table) and is left to Python untouched, -1 on error. New locations, stacks, idle rules and
 * label sets are made through the sampler's callbacks. */
static int sample_one(Tick *t, PyObject *ident_o, unsigned long long ident, PyObject *top)
{
    if (!PyFrame_Check(top))
        return 0;
    PyObject *st = PyDict_GetItemWithError(t->tstate, ident_o);
    if (st == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyList_CheckExact(st) || PyList_GET_SIZE(st) < 9)
        return 0;
    /* st: [previous cpu ns, id(top), its f_lasti, stack id, pending cpu, top is idle, request labels,
     *      aggregate key, aggregate counters] */
    int lasti = LASTI((PyFrameObject *)top);
    PyObject *s1 = PyList_GET_ITEM(st, 1), *s2 = PyList_GET_ITEM(st, 2), *s3 = PyList_GET_ITEM(st, 3);
    int same_top = PyLong_CheckExact(s1) && PyLong_CheckExact(s2) && PyLong_AsVoidPtr(s1) == (void *)top &&
                   PyLong_AsLong(s2) == lasti;
    if (PyErr_Occurred())
        return -1;
    if (same_top && PyList_GET_ITEM(st, 5) == Py_True) {
        /* still waiting where it waited last tick: wall time on the same key, no CPU clock read */
        PyObject *acc = PyList_GET_ITEM(st, 8), *key = PyList_GET_ITEM(st, 7);
        if (!PyList_CheckExact(acc) || PyList_GET_SIZE(acc) < 3 || !PyTuple_CheckExact(key) ||
            PyTuple_GET_SIZE(key) != 2)
            return 0;
        if (add_into(acc, 0, 1) < 0 || add_into(acc, 1, t->wall) < 0)
            return -1;
        int on_ovf = is_sid(s3, t->ovf_sid);
        if (t->hook != NULL && PyList_GET_ITEM(st, 6) != Py_None)
            call_hook(t, ident_o, s3, PyTuple_GET_ITEM(key, 1), t->wall, 0);
        return on_ovf ? 2 : 1;
    }
    long long cur;
    if (t->have_main_cpu && ident == t->main) {
        cur = t->main_cpu;
    } else {
        PyObject *clk = PyDict_GetItemWithError(t->clocks, ident_o);
        if (clk == NULL)
            return PyErr_Occurred() ? -1 : 0;
        if (!PyLong_CheckExact(clk))  /* False: no clock for it */
            return 0;
        long id = PyLong_AsLong(clk);
        struct timespec ts;
        if ((id == -1 && PyErr_Occurred()) || clock_gettime((clockid_t)id, &ts) != 0) {
            PyErr_Clear();
            return 0;  /* Python reads it again and forgets a thread that is gone */
        }
        cur = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    long long cpu = 0;
    PyObject *s0 = PyList_GET_ITEM(st, 0);
    if (s0 != Py_None) {
        long long prev = PyLong_AsLongLong(s0);
        if (prev == -1 && PyErr_Occurred())
            return -1;
        cpu = cur < prev ? 0 : cur - prev;
    }
    int walked = !(cpu == 0 && same_top && PyLong_CheckExact(s3) && PyLong_AsLong(s3) >= 0);
    PyObject *sid = walked ? stack_id(t, top) : Py_NewRef(s3);  /* s3: it has not run since: same stack */
    if (sid == NULL || sid == Py_None) {
        Py_XDECREF(sid);
        return PyErr_Occurred() ? -1 : 0;
    }
    int r = sample_at(t, ident_o, top, st, sid, walked, lasti, cur, cpu);
    Py_DECREF(sid);
    return r;
}

/* the rest of sample_one, once the thread's stack id sid is known */
static int sample_at(Tick *t, PyObject *ident_o, PyObject *top, PyObject *st, PyObject *sid, int walked, int lasti,
                     long long cur, long long cpu)
{
    int idle = idle_rule(t, top, lasti);
    PyObject *name = idle < 0 ? NULL : PyDict_GetItemWithError(t->names, ident_o);
    if (name == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *tag = t->tags != NULL ? PyDict_GetItemWithError(t->tags, ident_o) : NULL, *tl;
    if (tag == NULL && PyErr_Occurred())
        return -1;
    if (tag != NULL && tag != Py_None) {
        tl = PyObject_GetAttr(tag, str_labels);
        if (tl == NULL) {  /* Python's tagger notes the error */
            PyErr_Clear();
            return 0;
        }
    } else {
        tl = Py_NewRef(t->untagged);  /* outside any request */
    }
    PyObject *lkey = PyTuple_Pack(2, tl, name), *labels = NULL, *made = NULL, *akey = NULL, *acc = NULL;
    if (lkey != NULL) {
        labels = PyDict_GetItemWithError(t->lcache, lkey);
        Py_DECREF(lkey);
    }
    if (labels == NULL && !PyErr_Occurred())  /* a new label set: made (and cached) by Python */
        labels = made = PyObject_CallFunctionObjArgs(t->make_labels, tl, name, NULL);
    if (labels != NULL)
        akey = PyTuple_Pack(2, sid, labels);
    if (akey != NULL) {
        acc = PyDict_GetItemWithError(t->agg, akey);
        if (acc == NULL && !PyErr_Occurred() && PyDict_GET_SIZE(t->agg) < t->max_keys) {
            acc = Py_BuildValue("[iii]", 0, 0, 0);  /* a new key: Python handles a full table */
            if (acc != NULL) {
                int failed = PyDict_SetItem(t->agg, akey, acc);
                Py_DECREF(acc);  /* agg holds it */
                if (failed < 0)
                    acc = NULL;
            }
        }
    }
    Py_XDECREF(made);  /* the label cache holds it (or akey does) */
    if (acc == NULL || !PyList_CheckExact(acc) || PyList_GET_SIZE(acc) < 3) {
        Py_DECREF(tl);
        Py_XDECREF(akey);
        return PyErr_Occurred() ? -1 : 0;
    }
    /* everything is known: update the thread's state and the aggregate */
    PyObject *cur_o = PyLong_FromLongLong(cur);
    PyObject *top_id = walked ? PyLong_FromVoidPtr(top) : NULL, *lasti_o = walked ? PyLong_FromLong(lasti) : NULL;
    long long pending = PyLong_AsLongLong(PyList_GET_ITEM(st, 4));
    if (cur_o == NULL || (walked && (top_id == NULL || lasti_o == NULL)) || (pending == -1 && PyErr_Occurred())) {
        Py_XDECREF(cur_o);
        Py_XDECREF(top_id);
        Py_XDECREF(lasti_o);
        Py_DECREF(tl);
        Py_DECREF(akey);
        return -1;
    }
    set_item(st, 0, cur_o);
    if (walked) {
        set_item(st, 1, top_id);
        set_item(st, 2, lasti_o);
        set_item(st, 3, Py_NewRef(sid));
    }
    set_item(st, 5, Py_NewRef(idle ? Py_True : Py_False));
    int failed = 0;
    if (idle) {  /* CPU used since waits for the thread's next running sample */
        failed = add_into(st, 4, cpu);
        cpu = 0;
    } else if (pending) {
        cpu += pending;
        set_item(st, 4, PyLong_FromLong(0));
    }
    int tagged = tl != Py_None;
    set_item(st, 6, tl);
    set_item(st, 7, akey);
    set_item(st, 8, Py_NewRef(acc));
    if (failed || add_into(acc, 0, 1) < 0 || add_into(acc, 1, t->wall) < 0 || add_into(acc, 2, cpu) < 0)
        return -1;
    if (t->hook != NULL && tagged)  /* the hook wants requests' samples only */
        call_hook(t, ident_o, sid, labels, t->wall, cpu);
    return is_sid(sid, t->ovf_sid) ? 2 : 1;
}

/* sample_threads(frames, tags, untagged, tstate, own_threads, own, main, main_cpu, wall, locs,
 *                resolve, stack_ids, new_stack, idle, idle_of, names, lcache, make_labels, agg,
 *                max_keys, ovf_sid, hook, clocks, slow, errors)
 *   -> (sampled, on the overflow stack)
 * The sampler's loop over one tick's frames for the threads whose sample needs nothing new; the
 * idents of the others are appended to slow for the Python loop, their state untouched. A hook's
 * exceptions are appended to errors. */
static PyObject *walk_sample_threads(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != N_ARGS || !PyDict_Check(args[A_FRAMES]) ||
        !(args[A_TAGS] == Py_None || PyDict_Check(args[A_TAGS])) || !PyDict_Check(args[A_TSTATE]) ||
        !PyAnySet_Check(args[A_OWN_THREADS]) || !PyDict_Check(args[A_LOCS]) || !PyDict_Check(args[A_STACK_IDS]) ||
        !PyDict_Check(args[A_IDLE]) || !PyDict_Check(args[A_NAMES]) || !PyDict_Check(args[A_LCACHE]) ||
        !PyDict_Check(args[A_AGG]) || !PyDict_Check(args[A_CLOCKS]) || !PyList_Check(args[A_SLOW]) ||
        !PyList_Check(args[A_ERRORS])) {
        PyErr_SetString(PyExc_TypeError, "sample_threads: see mcpprof.collect.tick for the arguments");
        return NULL;
    }
    Tick t = {
        .tags = args[A_TAGS] == Py_None ? NULL : args[A_TAGS], .untagged = args[A_UNTAGGED],
        .tstate = args[A_TSTATE], .locs = args[A_LOCS], .resolve = args[A_RESOLVE], .stack_ids = args[A_STACK_IDS],
        .new_stack = args[A_NEW_STACK], .idle = args[A_IDLE], .idle_of = args[A_IDLE_OF],
        .make_labels = args[A_MAKE_LABELS], .max_keys = PyLong_AsSsize_t(args[A_MAX_KEYS]),
        .names = args[A_NAMES], .lcache = args[A_LCACHE], .agg = args[A_AGG],
        .hook = args[A_HOOK] == Py_None ? NULL : args[A_HOOK], .clocks = args[A_CLOCKS], .errors = args[A_ERRORS],
        .have_main_cpu = args[A_MAIN_CPU] != Py_None,
        .main = PyLong_AsUnsignedLongLongMask(args[A_MAIN]),
        .main_cpu = args[A_MAIN_CPU] == Py_None ? 0 : PyLong_AsLongLong(args[A_MAIN_CPU]),
        .wall = PyLong_AsLongLong(args[A_WALL]), .ovf_sid = PyLong_AsLong(args[A_OVF_SID]),
    };
    unsigned long long own = PyLong_AsUnsignedLongLongMask(args[A_OWN]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *frames = args[A_FRAMES], *own_threads = args[A_OWN_THREADS], *slow = args[A_SLOW];
    PyObject *ident_o, *top;
    Py_ssize_t pos = 0, sampled = 0, overflow = 0;
    while (PyDict_Next(frames, &pos, &ident_o, &top)) {
        unsigned long long ident = PyLong_AsUnsignedLongLongMask(ident_o);
        if (ident == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
        if (ident == own)
            continue;
        int r = PySet_Contains(own_threads, ident_o);
        if (r == 0)
            r = sample_one(&t, ident_o, ident, top);
        else if (r > 0)
            continue;  /* one of mcpprof's own threads */
        if (r < 0 && note_error(t.errors) < 0)  /* this thread's sample is lost, as in Python */
            return NULL;
        if (r == 0 && PyList_Append(slow, ident_o) < 0)
            return NULL;
        sampled += r > 0;
        overflow += r == 2;
    }
    return Py_BuildValue("nn", sampled, overflow);
}

static PyObject *walk_cache_sizes(PyObject *mod, PyObject *unused)
{
    return Py_BuildValue("{s:n,s:n,s:n,s:n}", "location_slots", LC.cap, "locations", LC.used, "stack_slots", SC.cap,
                         "stacks", SC.used);
}

static PyMethodDef walk_methods[] = {
    {"cache_sizes", walk_cache_sizes, METH_NOARGS, "cache_sizes() -> slots and entries of the C walk's two tables"},
    {"stack_key", (PyCFunction)(void (*)(void))walk_stack_key, METH_FASTCALL,
     "stack_key(frame, locs, resolve=None) -> frame ids root first, or None if a location is not cached"},
    {"sample_threads", (PyCFunction)(void (*)(void))walk_sample_threads, METH_FASTCALL,
     "sample_threads(...) -> (sampled, overflow): the sampler's loop for threads needing nothing new"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "The sampler's stack walk and tick in C (see mcpprof.collect.sampler).", -1,
    walk_methods,
};

PyMODINIT_FUNC PyInit__walk(void)
{
    str_labels = PyUnicode_InternFromString("labels");
    if (str_labels == NULL)
        return NULL;
    return PyModule_Create(&module);
}
