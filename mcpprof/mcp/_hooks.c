/* _hooks: the per-request hot path of mcpprof.mcp.context, in C.
 *
 * An optional accelerator, built by setup.py with optional=True: where it is missing (no compiler,
 * another CPython), context.py's pure-Python path does the same work, a few times slower. What is
 * here runs on every request of a profiled server, so it is what the agent's overhead is made of:
 *
 *   Tag          the request tag (method, target, ids, labels, exact CPU, duration, error);
 *   Step         an awaitable that charges the thread CPU of each of its steps to a tag (only
 *                with exact CPU on); in "request" mode it also enters the request when made and
 *                leaves it when done: the ContextVar, the list of requests in flight, the queue
 *                of finished requests for the sinks. Nothing else runs per request: samplers
 *                find a thread's request in that thread's current context (thread_tags);
 *   sdk2_call    the body of the mcp 2.x ServerMiddleware (tag, enter, step, leave);
 *   enter/leave  the same for adapters that wrap the handler themselves (mcp 1.x);
 *   TaskFactory  exact CPU only: tasks spawned inside a request meter their steps to its tag;
 *   ThreadHook   wraps anyio.to_thread.run_sync / asyncio.to_thread so a request's callable
 *                runs as a Tagged callable, which meters its worker's CPU (a sampler sees a
 *                short sync call only after it has given the GIL back);
 *   thread_tags  {thread ident: tag} read from every thread's current context (its
 *                PyThreadState.context, with the GIL held); frames_and_tags takes it together
 *                with sys._current_frames().
 *
 * The Python objects it works with (the ContextVar, the maps, the queue, helpers for rare paths)
 * are handed over once by configure(). Failures of its own never fail a request: a request whose
 * tag cannot be made runs untagged. GIL builds of CPython 3.10+ only; public C API plus the
 * context and thread_id fields of PyThreadState (cpython/pystate.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

typedef struct {
    PyObject *current, *task_tags, *thread_tags, *current_tasks;
    PyObject *note_loop, *finished_append, *sinks, *label_entry, *label_cache;
    PyObject *error_kind, *first_request, *get_running_loop, *task_type, *forget_task;
    PyObject *targets, *resource_spec, *tool_error, *empty, *finished, *drain;
    int serving, metering;
    PyObject *last_loop;  /* the loop of the last request entered, noted (cleared by set_flags) */
} State;

static State S;
static Py_ssize_t drain_at = 65536;  /* context.DRAIN_AT: queued requests a request drains itself */
static PyObject *s_method, *s_params, *s_request_id, *s_send, *s_throw, *s_close, *s_is_error,
    *s_isError, *s_loop, *s_context, *s_add_done_callback, *s_cpu_ns, *s_resources, *s_await;

static long long thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long mono_ns(void)  /* the clock of time.perf_counter_ns on Linux */
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#include "_hooks_tag.h"
#include "_hooks_step.h"
#include "_hooks_wrap.h"

/* -- module ---------------------------------------------------------------------------------- */

/* into tags: {thread ident: the request tag in that thread's current context}, for every thread
 * whose context has one. Runs with the GIL held: no thread state is freed meanwhile (a thread
 * deletes its own state holding the GIL). */
static int context_tags(PyObject *tags)
{
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts)) {
        PyObject *ctx = ts->context;
        if (ctx == NULL || !PyContext_CheckExact(ctx))
            continue;
        int has = PySequence_Contains(ctx, S.current);
        if (has <= 0) {
            if (has < 0)
                PyErr_Clear();
            continue;
        }
        PyObject *tag = PyObject_GetItem(ctx, S.current);
        if (tag == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *key = tag == Py_None ? NULL : PyLong_FromUnsignedLong(ts->thread_id);
        int bad = key != NULL && PyDict_SetItem(tags, key, tag) < 0;
        Py_XDECREF(key);
        Py_DECREF(tag);
        if (bad)
            return -1;
    }
    return 0;
}

static PyObject *hooks_thread_tags(PyObject *mod, PyObject *unused);

static PyObject *hooks_frames_and_tags(PyObject *mod, PyObject *unused)
{
    /* sys._current_frames() is C: nothing between the two reads lets another thread run */
    PyObject *current_frames = PySys_GetObject("_current_frames");  /* borrowed */
    if (current_frames == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sys._current_frames is missing");
        return NULL;
    }
    PyObject *frames = PyObject_CallNoArgs(current_frames);
    if (frames == NULL)
        return NULL;
    PyObject *tags = hooks_thread_tags(mod, NULL);
    if (tags == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, frames, tags);
    Py_DECREF(frames);
    Py_DECREF(tags);
    return r;
}

/* thread_tags(): {ident: tag} of every thread running a request now (the map merged with contexts) */
static PyObject *hooks_thread_tags(PyObject *mod, PyObject *unused)
{
    PyObject *tags = S.thread_tags ? PyDict_Copy(S.thread_tags) : PyDict_New();
    if (tags != NULL && S.current != NULL && context_tags(tags) < 0)
        Py_CLEAR(tags);
    return tags;
}

/* thread_tag(ident): the request in thread ident's current context, or None */
static PyObject *hooks_thread_tag(PyObject *mod, PyObject *arg)
{
    unsigned long ident = PyLong_AsUnsignedLong(arg);
    if (ident == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    PyInterpreterState *interp = PyThreadState_GetInterpreter(PyThreadState_Get());
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL; ts = PyThreadState_Next(ts)) {
        if (ts->thread_id != ident || ts->context == NULL || !PyContext_CheckExact(ts->context) || S.current == NULL)
            continue;
        int has = PySequence_Contains(ts->context, S.current);
        if (has < 0)
            return NULL;
        if (has)
            return PyObject_GetItem(ts->context, S.current);
    }
    Py_RETURN_NONE;
}

/* configure(**objects): every name below, once, before any other call */
static PyObject *hooks_configure(PyObject *mod, PyObject *args, PyObject *kw)
{
    struct { const char *name; PyObject **slot; PyTypeObject *type; } spec[] = {
        {"current", &S.current, &PyContextVar_Type}, {"task_tags", &S.task_tags, &PyDict_Type},
        {"thread_tags", &S.thread_tags, &PyDict_Type},
        {"current_tasks", &S.current_tasks, &PyDict_Type},
        {"note_loop", &S.note_loop, NULL}, {"finished", &S.finished, NULL},
        {"drain", &S.drain, NULL}, {"sinks", &S.sinks, &PyList_Type}, {"label_entry", &S.label_entry, NULL},
        {"label_cache", &S.label_cache, &PyDict_Type}, {"error_kind", &S.error_kind, NULL},
        {"first_request", &S.first_request, NULL}, {"get_running_loop", &S.get_running_loop, NULL},
        {"task_type", &S.task_type, NULL}, {"forget_task", &S.forget_task, NULL},
        {"targets", &S.targets, &PyDict_Type}, {"resource_spec", &S.resource_spec, &PyTuple_Type},
        {"tool_error", &S.tool_error, &PyUnicode_Type}, {"drain_at", NULL, &PyLong_Type},
    };
    const size_t count = sizeof(spec) / sizeof(spec[0]);
    if (PyTuple_GET_SIZE(args) != 0 || kw == NULL || (size_t)PyDict_GET_SIZE(kw) != count) {
        PyErr_Format(PyExc_TypeError, "configure takes exactly %d keyword arguments", (int)count);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *v = PyDict_GetItemString(kw, spec[i].name);
        if (v == NULL || (spec[i].type != NULL && !PyObject_TypeCheck(v, spec[i].type))) {
            PyErr_Format(PyExc_TypeError, "configure: %s missing or of the wrong type", spec[i].name);
            return NULL;
        }
    }
    if (PyTuple_GET_SIZE(PyDict_GetItemString(kw, "resource_spec")) != 2) {
        PyErr_SetString(PyExc_ValueError, "resource_spec is (field, label key)");
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(PyDict_GetItemString(kw, "finished"), "append");
    if (append == NULL)
        return NULL;
    Py_ssize_t at = PyLong_AsSsize_t(PyDict_GetItemString(kw, "drain_at"));
    if (at < 1) {
        Py_DECREF(append);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "drain_at must be positive");
        return NULL;
    }
    drain_at = at;
    for (size_t i = 0; i < count; i++)
        if (spec[i].slot != NULL)
            Py_XSETREF(*spec[i].slot, Py_NewRef(PyDict_GetItemString(kw, spec[i].name)));
    Py_XSETREF(S.finished_append, append);
    Py_RETURN_NONE;
}

static PyObject *hooks_set_flags(PyObject *mod, PyObject *args)
{
    int serving, metering;
    if (!PyArg_ParseTuple(args, "pp:set_flags", &serving, &metering))
        return NULL;
    Py_CLEAR(S.last_loop);  /* metering or factories changed: note the loop again */
    S.serving = serving;
    S.metering = metering;
    Py_RETURN_NONE;
}

static PyObject *hooks_thread_cpu_ns(PyObject *mod, PyObject *unused)
{
    return PyLong_FromLongLong(thread_cpu_ns());
}

static PyMethodDef hooks_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))hooks_configure, METH_VARARGS | METH_KEYWORDS,
     "Hand over the objects of mcpprof.mcp.context (once, before any other call)."},
    {"set_flags", hooks_set_flags, METH_VARARGS, "set_flags(serving, metering)"},
    {"set_worker_calls", hooks_set_worker_calls, METH_O,
     "set_worker_calls(dict or None): where the to_thread wrappers note the calls they ran"},
    {"tag_for", (PyCFunction)(void (*)(void))hooks_tag_for, METH_VARARGS | METH_KEYWORDS,
     "tag_for(method, params, request_id=None, session_id=None)"},
    {"metered", (PyCFunction)(void (*)(void))hooks_metered, METH_FASTCALL, "metered(awaitable, tag)"},
    {"request", (PyCFunction)(void (*)(void))hooks_request, METH_FASTCALL, "request(awaitable, tag, tool_call)"},
    {"sdk2_call", (PyCFunction)(void (*)(void))hooks_sdk2_call, METH_FASTCALL, "sdk2_call(ctx, call_next)"},
    {"tagged", (PyCFunction)(void (*)(void))hooks_tagged, METH_FASTCALL, "tagged(func, tag)"},
    {"thread_hook", hooks_thread_hook, METH_O, "thread_hook(run_sync or to_thread): the wrapped function"},
    {"frames_and_tags", hooks_frames_and_tags, METH_NOARGS, "(sys._current_frames(), thread_tags()) together"},
    {"thread_tags", hooks_thread_tags, METH_NOARGS, "{thread ident: request tag} from every thread's context"},
    {"thread_tag", hooks_thread_tag, METH_O, "thread_tag(ident): the request tag in that thread's context"},
    {"enter", hooks_enter, METH_O, "enter(tag): enter the request now; returns the handle for leave()"},
    {"leave", (PyCFunction)(void (*)(void))hooks_leave, METH_FASTCALL, "leave(handle, error): end the request"},
    {"inflight", hooks_inflight, METH_NOARGS, "[(task or None, tag)] of the requests in flight"},
    {"thread_cpu_ns", hooks_thread_cpu_ns, METH_NOARGS, "CPU time of the calling thread (ns)"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hooks", "mcpprof's per-request hooks in C (see mcpprof.mcp.context).", -1,
    hooks_methods,
};

PyMODINIT_FUNC PyInit__hooks(void)
{
    PyTypeObject *types[] = {&TagType, &StepType, &FactoryType, &HookType, &TaggedType};
    const char *names[] = {"RequestTag", "Metered", "TaskFactory", "ThreadHook", "Tagged"};
    struct { PyObject **var; const char *text; } strs[] = {
        {&s_method, "method"}, {&s_params, "params"}, {&s_request_id, "request_id"}, {&s_send, "send"},
        {&s_throw, "throw"}, {&s_close, "close"}, {&s_is_error, "is_error"},
        {&s_isError, "isError"}, {&s_loop, "loop"}, {&s_context, "context"},
        {&s_add_done_callback, "add_done_callback"}, {&s_cpu_ns, "cpu_ns"}, {&s_resources, "resources/"},
        {&s_await, "__await__"}, {&S.empty, ""},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if ((*strs[i].var = PyUnicode_InternFromString(strs[i].text)) == NULL)
            return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    for (int i = 0; i < 5; i++) {
        if (PyType_Ready(types[i]) < 0 || PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
