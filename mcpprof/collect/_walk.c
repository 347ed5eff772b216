/* _walk: the sampler's stack walk in C (mcpprof.collect.sampler).
 *
 * An optional accelerator, built by setup.py with optional=True; where it is missing the sampler
 * walks frames in Python (a raw (id(code), f_lasti) key and a cache of them). One function:
 *
 *   stack_key(frame, locs)  the frame ids of frame and its callers from the sampler's location
 *                           cache (locs[id(code)][f_lasti]), root first: the stack table's key;
 *                           None if a location is not cached yet.
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
