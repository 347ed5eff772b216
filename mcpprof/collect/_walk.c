/* _walk: the sampler's stack walk in C (mcpprof.collect.sampler, mcpprof.collect.stacktable).
 *
 * An optional accelerator, built by setup.py with optional=True; where it is missing the sampler
 * walks frames in Python and gets the same keys. Two functions:
 *
 *   raw_key(frame)          (id(code), f_lasti, id(code), f_lasti, ...) of frame and its callers,
 *                           leaf first: the key of the sampler's raw-stack cache;
 *   cached_fids(key, locs)  the frame ids of such a key from the location cache
 *                           (locs[id(code)][f_lasti]), leaf first, or None if one is not cached;
 *   stack_key(frame, locs)  the frame ids of frame and its callers from that cache, root first:
 *                           the stack table's key, without a raw key in between.
 *
 * Public C API (PyFrame_GetCode / GetLasti / GetBack; f_lasti on 3.10); runs on the sampler's tick.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX >= 0x030B0000
#define LASTI(f) PyFrame_GetLasti(f)
#else
#define LASTI(f) ((f)->f_lasti < 0 ? -1 : (f)->f_lasti * (int)sizeof(_Py_CODEUNIT))
#endif

#define SMALL 128

/* double the buffer *items (holding n items; small is the caller's stack buffer); -1 with
 * MemoryError set and *items unchanged on failure */
static int grow(PyObject ***items, PyObject **small, Py_ssize_t n, Py_ssize_t *cap)
{
    PyObject **bigger = PyMem_Malloc(2 * *cap * sizeof(PyObject *));
    if (bigger == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(bigger, *items, n * sizeof(PyObject *));
    if (*items != small)
        PyMem_Free(*items);
    *items = bigger;
    *cap *= 2;
    return 0;
}

static PyObject *walk_raw_key(PyObject *mod, PyObject *top)
{
    if (!PyFrame_Check(top)) {
        PyErr_SetString(PyExc_TypeError, "raw_key() takes a frame");
        return NULL;
    }
    PyObject *small[SMALL], **items = small;
    Py_ssize_t n = 0, cap = SMALL;
    PyFrameObject *f = (PyFrameObject *)Py_NewRef(top);
    PyObject *key = NULL;
    while (f != NULL) {
        if (n + 2 > cap && grow(&items, small, n, &cap) < 0) {
            Py_DECREF(f);
            goto done;
        }
        PyCodeObject *code = PyFrame_GetCode(f);
        items[n] = PyLong_FromVoidPtr(code);
        Py_DECREF(code);
        items[n + 1] = PyLong_FromLong(LASTI(f));
        if (items[n] == NULL || items[n + 1] == NULL) {
            Py_XDECREF(items[n]);
            Py_XDECREF(items[n + 1]);
            Py_DECREF(f);
            goto done;
        }
        n += 2;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    key = PyTuple_New(n);
    if (key != NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            PyTuple_SET_ITEM(key, i, items[i]);
        n = 0;  /* the tuple owns them now */
    }
done:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(items[i]);
    if (items != small)
        PyMem_Free(items);
    return key;
}

static PyObject *walk_cached_fids(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "cached_fids(key: tuple, locs: dict)");
        return NULL;
    }
    PyObject *key = args[0], *locs = args[1];
    Py_ssize_t n = PyTuple_GET_SIZE(key) / 2;
    PyObject *fids = PyList_New(n);
    if (fids == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *by_lasti = PyDict_GetItemWithError(locs, PyTuple_GET_ITEM(key, 2 * i));
        PyObject *fid = by_lasti != NULL && PyDict_Check(by_lasti)
                            ? PyDict_GetItemWithError(by_lasti, PyTuple_GET_ITEM(key, 2 * i + 1)) : NULL;
        if (fid == NULL) {
            Py_DECREF(fids);
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        PyList_SET_ITEM(fids, i, Py_NewRef(fid));
    }
    return fids;
}

/* stack_key(frame, locs): the frame ids of frame and its callers from the location cache,
 * root first (the key of the sampler's stack table), or None if a location is not cached */
static PyObject *walk_stack_key(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFrame_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "stack_key(frame, locs: dict)");
        return NULL;
    }
    PyObject *locs = args[1], *small[SMALL], **fids = small, *key = NULL;
    Py_ssize_t n = 0, cap = SMALL;
    PyFrameObject *f = (PyFrameObject *)Py_NewRef(args[0]);
    while (f != NULL) {
        PyCodeObject *code = PyFrame_GetCode(f);
        PyObject *code_id = PyLong_FromVoidPtr(code), *lasti = PyLong_FromLong(LASTI(f));
        Py_DECREF(code);
        PyObject *by_lasti = code_id ? PyDict_GetItemWithError(locs, code_id) : NULL;
        PyObject *fid = by_lasti != NULL && PyDict_Check(by_lasti) && lasti
                            ? PyDict_GetItemWithError(by_lasti, lasti) : NULL;
        Py_XDECREF(code_id);
        Py_XDECREF(lasti);
        if (fid == NULL || (n == cap && grow(&fids, small, n, &cap) < 0)) {
            Py_DECREF(f);
            if (!PyErr_Occurred())
                key = Py_NewRef(Py_None);  /* a location not cached yet */
            goto done;
        }
        fids[n++] = fid;  /* borrowed: locs holds it */
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_DECREF(f);
        f = back;
    }
    key = PyTuple_New(n);
    for (Py_ssize_t i = 0; key != NULL && i < n; i++)
        PyTuple_SET_ITEM(key, i, Py_NewRef(fids[n - 1 - i]));
done:
    if (fids != small)
        PyMem_Free(fids);
    return key;
}

static PyMethodDef walk_methods[] = {
    {"stack_key", (PyCFunction)(void (*)(void))walk_stack_key, METH_FASTCALL,
     "stack_key(frame, locs) -> frame ids root first, or None if a location is not cached"},
    {"raw_key", walk_raw_key, METH_O, "raw_key(frame) -> (id(code), f_lasti, ...) leaf first"},
    {"cached_fids", (PyCFunction)(void (*)(void))walk_cached_fids, METH_FASTCALL,
     "cached_fids(key, locs) -> frame ids leaf first, or None if a location is not cached"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "The sampler's stack walk in C (see mcpprof.collect.sampler).", -1,
    walk_methods,
};

PyMODINIT_FUNC PyInit__walk(void)
{
    return PyModule_Create(&module);
}
