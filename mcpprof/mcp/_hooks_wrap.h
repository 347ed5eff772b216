/* _hooks_wrap.h: the task factory and the to_thread hooks (see _hooks.c). Included once by _hooks.c. */

/* -- TaskFactory ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *previous;
} FactoryObject;

static int factory_traverse(FactoryObject *f, visitproc visit, void *arg)
{
    Py_VISIT(f->previous);
    return 0;
}

static int factory_clear(FactoryObject *f)
{
    Py_CLEAR(f->previous);
    return 0;
}

static void factory_dealloc(FactoryObject *f)
{
    PyObject_GC_UnTrack(f);
    factory_clear(f);
    PyObject_GC_Del(f);
}

static PyObject *factory_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    PyObject *previous = Py_None;
    if (!PyArg_ParseTuple(args, "|O:TaskFactory", &previous))
        return NULL;
    FactoryObject *f = PyObject_GC_New(FactoryObject, type);
    if (f == NULL)
        return NULL;
    f->previous = Py_NewRef(previous);
    PyObject_GC_Track(f);
    return (PyObject *)f;
}

/* factory(loop, coro, **kwargs): the tag of the context the task will run in goes with the task */
static PyObject *factory_call(FactoryObject *f, PyObject *args, PyObject *kw)
{
    PyObject *loop, *coro, *tag = NULL, *wrapped = NULL, *task = NULL, *kwargs = NULL;
    if (!PyArg_ParseTuple(args, "OO:task_factory", &loop, &coro))
        return NULL;
    PyObject *ctx = kw ? PyDict_GetItemWithError(kw, s_context) : NULL;
    if (ctx != NULL && ctx != Py_None) {
        tag = PyObject_GetItem(ctx, S.current);
        if (tag == NULL)
            PyErr_Clear();
    } else if (PyErr_Occurred() || PyContextVar_Get(S.current, Py_None, &tag) < 0) {
        PyErr_Clear();
        tag = NULL;
    }
    if (tag == Py_None)
        Py_CLEAR(tag);
    if (tag != NULL && S.metering && (wrapped = (PyObject *)step_new(coro, tag)) == NULL)
        PyErr_Clear();  /* not metered, still tagged */
    PyObject *use = wrapped ? wrapped : coro;
    if (f->previous != Py_None) {
        PyObject *call_args = PyTuple_Pack(2, loop, use);
        task = call_args ? PyObject_Call(f->previous, call_args, kw) : NULL;
        Py_XDECREF(call_args);
    } else if ((kwargs = kw ? PyDict_Copy(kw) : PyDict_New()) != NULL &&
               PyDict_SetItem(kwargs, s_loop, loop) == 0) {
        PyObject *call_args = PyTuple_Pack(1, use);
        task = call_args ? PyObject_Call(S.task_type, call_args, kwargs) : NULL;
        Py_XDECREF(call_args);
    }
    Py_XDECREF(kwargs);
    Py_XDECREF(wrapped);
    if (task != NULL && tag != NULL) {
        PyObject *r = NULL;
        if (PyDict_SetItem(S.task_tags, task, tag) == 0)
            r = PyObject_CallMethodOneArg(task, s_add_done_callback, S.forget_task);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_XDECREF(tag);
    return task;
}

static PyObject *factory_marker(PyObject *f, void *u) { Py_RETURN_TRUE; }
static PyObject *factory_previous(FactoryObject *f, void *u) { return Py_NewRef(f->previous); }
static PyGetSetDef factory_getset[] = {
    {"_mcpprof", factory_marker, NULL, NULL, NULL},
    {"previous", (getter)factory_previous, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject FactoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mcpprof.mcp._hooks.TaskFactory",
    .tp_basicsize = sizeof(FactoryObject),
    .tp_dealloc = (destructor)factory_dealloc,
    .tp_call = (ternaryfunc)factory_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Task factory: a task made inside a request carries its tag (and meters its CPU).",
    .tp_traverse = (traverseproc)factory_traverse,
    .tp_clear = (inquiry)factory_clear,
    .tp_getset = factory_getset,
    .tp_new = factory_new,
};

/* -- ThreadHook and Tagged ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *wrapped;  /* ThreadHook: the original run_sync/to_thread; Tagged: the callable */
    PyObject *tag;      /* Tagged only */
    vectorcallfunc vectorcall;
} WrapObject;

static PyTypeObject HookType, TaggedType;

static int wrap_traverse(WrapObject *w, visitproc visit, void *arg)
{
    Py_VISIT(w->wrapped);
    Py_VISIT(w->tag);
    return 0;
}

static int wrap_clear(WrapObject *w)
{
    Py_CLEAR(w->wrapped);
    Py_CLEAR(w->tag);
    return 0;
}

static void wrap_dealloc(WrapObject *w)
{
    PyObject_GC_UnTrack(w);
    wrap_clear(w);
    PyObject_GC_Del(w);
}

/* While a sampler watches (worker_calls set): {thread ident: [(callable, tag, cpu at start, cpu at
 * end), ...]} of the calls the wrappers ran on each worker thread since the sampler's last tick
 * took them (workercalls.take_worker_calls), at most WORKER_CALLS_MAX (workercalls.MAX) per thread. */
static PyObject *worker_calls;
#define WORKER_CALLS_MAX 64

static void note_worker_call(PyObject *func, PyObject *tag, long long t0, long long t1)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);  /* the call's own exception, if any, goes on untouched */
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident()), *list = NULL, *rec = NULL;
    if (ident != NULL) {
        list = PyDict_GetItemWithError(worker_calls, ident);  /* borrowed */
        if (list == NULL && !PyErr_Occurred() && (list = PyList_New(0)) != NULL) {
            if (PyDict_SetItem(worker_calls, ident, list) < 0)
                Py_CLEAR(list);
            else
                Py_DECREF(list);  /* the dict holds it */
        }
    }
    if (list != NULL && PyList_Check(list) && PyList_GET_SIZE(list) < WORKER_CALLS_MAX &&
        (rec = Py_BuildValue("(OOLL)", func, tag, t0, t1)) != NULL)
        PyList_Append(list, rec);
    Py_XDECREF(rec);
    Py_XDECREF(ident);
    PyErr_Clear();  /* recording never fails the call */
    PyErr_Restore(type, value, tb);
}

/* the callable, its CPU charged to the tag (the worker's tag itself is in its copied context) */
static PyObject *tagged_vectorcall(WrapObject *w, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    long long t0 = thread_cpu_ns();
    PyObject *r = PyObject_Vectorcall(w->wrapped, args, nargsf, kwnames);
    long long t1 = thread_cpu_ns();
    charge(w->tag, t1 - t0);
    if (worker_calls != NULL)
        note_worker_call(w->wrapped, w->tag, t0, t1);
    return r;
}

static PyObject *hooks_set_worker_calls(PyObject *mod, PyObject *calls)
{
    if (calls != Py_None && !PyDict_CheckExact(calls)) {
        PyErr_SetString(PyExc_TypeError, "set_worker_calls(dict or None)");
        return NULL;
    }
    Py_XSETREF(worker_calls, calls == Py_None ? NULL : Py_NewRef(calls));
    Py_RETURN_NONE;
}

static PyObject *new_wrap(PyTypeObject *type, PyObject *wrapped, PyObject *tag, vectorcallfunc vc)
{
    WrapObject *w = PyObject_GC_New(WrapObject, type);
    if (w == NULL)
        return NULL;
    w->wrapped = Py_NewRef(wrapped);
    w->tag = Py_XNewRef(tag);
    w->vectorcall = vc;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

/* hook(func, *args, **kwargs): pass through, with func as a Tagged callable inside a request */
static PyObject *hook_vectorcall(WrapObject *w, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    PyObject *tag = NULL;
    if (n < 1 || PyContextVar_Get(S.current, Py_None, &tag) < 0 || tag == Py_None) {
        PyErr_Clear();
        Py_XDECREF(tag);
        return PyObject_Vectorcall(w->wrapped, args, nargsf, kwnames);
    }
    Py_ssize_t total = n + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8], **copy = total <= 8 ? small : PyMem_Malloc(total * sizeof(PyObject *));
    PyObject *func = new_wrap(&TaggedType, args[0], tag, (vectorcallfunc)tagged_vectorcall);
    Py_DECREF(tag);
    if (copy == NULL || func == NULL) {
        if (copy != NULL && copy != small)
            PyMem_Free(copy);
        Py_XDECREF(func);
        PyErr_Clear();
        return PyObject_Vectorcall(w->wrapped, args, nargsf, kwnames);
    }
    memcpy(copy, args, total * sizeof(PyObject *));
    copy[0] = func;
    PyObject *r = PyObject_Vectorcall(w->wrapped, copy, n, kwnames);
    Py_DECREF(func);
    if (copy != small)
        PyMem_Free(copy);
    return r;
}

static PyObject *hooks_thread_hook(PyObject *mod, PyObject *original)
{
    return new_wrap(&HookType, original, NULL, (vectorcallfunc)hook_vectorcall);
}

static PyObject *wrap_wrapped(WrapObject *w, void *u) { return Py_NewRef(w->wrapped); }
static PyObject *wrap_tag(WrapObject *w, void *u) { return Py_NewRef(w->tag ? w->tag : Py_None); }
static PyGetSetDef wrap_getset[] = {
    {"__wrapped__", (getter)wrap_wrapped, NULL, NULL, NULL},
    {"tag", (getter)wrap_tag, NULL, NULL, NULL},
    {NULL},
};

#define WRAP_TYPE(var, name, doc)                                                                  \
    static PyTypeObject var = {                                                                    \
        PyVarObject_HEAD_INIT(NULL, 0)                                                             \
        .tp_name = "mcpprof.mcp._hooks." name,                                                     \
        .tp_basicsize = sizeof(WrapObject),                                                        \
        .tp_dealloc = (destructor)wrap_dealloc,                                                    \
        .tp_vectorcall_offset = offsetof(WrapObject, vectorcall),                                  \
        .tp_call = PyVectorcall_Call,                                                              \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,           \
        .tp_doc = doc,                                                                             \
        .tp_traverse = (traverseproc)wrap_traverse,                                                \
        .tp_clear = (inquiry)wrap_clear,                                                           \
        .tp_getset = wrap_getset,                                                                  \
    };
WRAP_TYPE(HookType, "ThreadHook", "Wraps run_sync/to_thread: a request's callable runs tagged on its worker.")
WRAP_TYPE(TaggedType, "Tagged", "A callable run on a worker thread that carries a request tag there.")

static PyObject *hooks_tagged(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "tagged(func, tag)");
        return NULL;
    }
    return new_wrap(&TaggedType, args[0], args[1], (vectorcallfunc)tagged_vectorcall);
}
