/* _hooks: the per-request hot path of mcpprof.mcp.context, in C.
 *
 * An optional accelerator, built by setup.py with optional=True: where it is missing (no compiler,
 * another CPython), context.py's pure-Python path does the same work, a few times slower. What is
 * here runs on every request of a profiled server, so it is what the agent's overhead is made of:
 *
 *   Tag          the request tag (method, target, ids, labels, exact CPU, duration, error);
 *   Step         an awaitable that charges the thread CPU of each of its steps to a tag; in
 *                "request" mode it also enters the request when made and leaves it when done
 *                (ContextVar, task -> tag map, queue of finished requests for the sinks);
 *   sdk2_call    the body of the mcp 2.x ServerMiddleware (tag, enter, step, leave);
 *   TaskFactory  the loop's task factory: tasks spawned inside a request carry (and meter) its tag;
 *   ThreadHook   wraps anyio.to_thread.run_sync / asyncio.to_thread: a tagged request's callable
 *                runs as a Tagged callable, which tags its worker thread and meters its CPU;
 *   frames_and_tags  sys._current_frames() and a copy of the thread -> tag map, taken together.
 *
 * The Python objects it works with (the ContextVar, the maps, the queue, helpers for rare paths)
 * are handed over once by configure(). Failures of its own never fail a request: a request whose
 * tag cannot be made runs untagged. GIL builds of CPython 3.10+ only; public API plus
 * _PyThread_CurrentFrames (exported, what sys._current_frames calls).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

typedef struct {
    PyObject *current, *task_tags, *thread_tags, *loops, *current_tasks, *factory_loops;
    PyObject *install_factory, *finished_append, *sinks, *label_entry, *label_cache;
    PyObject *error_kind, *first_request, *get_running_loop, *task_type, *forget_task;
    PyObject *targets, *resource_spec, *tool_error, *empty, *finished, *drain;
    int serving, metering;
} State;

static State S;
#define DRAIN_AT 65536  /* finished requests queued before the request path drains them itself */
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

/* -- Tag ------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *method, *target, *target_key, *request_id, *session_id, *labels, *error;
    long long start_ns, cpu_ns, duration_ns;
} TagObject;

static PyTypeObject TagType;

/* labels, method and target from the label cache (the cached strings: what outlives the request
 * holds one string per name), filled by the Python helper on a miss */
static int tag_set_names(TagObject *t, PyObject *method, PyObject *target, PyObject *key)
{
    PyObject *k = PyTuple_Pack(3, method, target, key);
    if (k == NULL)
        return -1;
    PyObject *entry = PyDict_GetItemWithError(S.label_cache, k);  /* borrowed */
    if (entry != NULL)
        Py_INCREF(entry);
    else if (!PyErr_Occurred())
        entry = PyObject_CallFunctionObjArgs(S.label_entry, method, target, key, NULL);
    Py_DECREF(k);
    if (entry == NULL)
        return -1;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) {
        Py_DECREF(entry);
        PyErr_SetString(PyExc_TypeError, "label entry must be (labels, method, target)");
        return -1;
    }
    Py_XSETREF(t->labels, Py_NewRef(PyTuple_GET_ITEM(entry, 0)));
    Py_XSETREF(t->method, Py_NewRef(PyTuple_GET_ITEM(entry, 1)));
    Py_XSETREF(t->target, Py_NewRef(PyTuple_GET_ITEM(entry, 2)));
    Py_XSETREF(t->target_key, Py_NewRef(key));
    Py_DECREF(entry);
    return 0;
}

static TagObject *tag_new_raw(void)
{
    TagObject *t = PyObject_New(TagObject, &TagType);
    if (t == NULL)
        return NULL;
    t->method = t->target = t->target_key = t->labels = NULL;
    t->request_id = Py_NewRef(S.empty);
    t->session_id = Py_NewRef(S.empty);
    t->error = Py_NewRef(Py_None);
    t->start_ns = t->cpu_ns = t->duration_ns = 0;
    return t;
}

static PyObject *tag_tp_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"method", "target", "target_key", "request_id", "session_id", "start_ns", NULL};
    PyObject *method, *target = S.empty, *key = S.empty, *rid = S.empty, *sid = S.empty;
    long long start = 0;
    if (S.label_cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_hooks is not configured");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|UUUUL:RequestTag", names, &method, &target, &key, &rid,
                                     &sid, &start))
        return NULL;
    TagObject *t = tag_new_raw();
    if (t == NULL)
        return NULL;
    if (tag_set_names(t, method, target, key) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    Py_SETREF(t->request_id, Py_NewRef(rid));
    Py_SETREF(t->session_id, Py_NewRef(sid));
    t->start_ns = start;
    return (PyObject *)t;
}

static void tag_dealloc(TagObject *t)
{
    Py_XDECREF(t->method); Py_XDECREF(t->target); Py_XDECREF(t->target_key); Py_XDECREF(t->request_id);
    Py_XDECREF(t->session_id); Py_XDECREF(t->labels); Py_XDECREF(t->error);
    PyObject_Free(t);
}

static PyObject *tag_name(TagObject *t, void *unused)
{
    if (t->target != NULL && PyUnicode_Check(t->target) && PyUnicode_GET_LENGTH(t->target) > 0)
        return PyUnicode_FromFormat("%S %S", t->method, t->target);
    return Py_NewRef(t->method ? t->method : Py_None);
}

static PyObject *tag_repr(TagObject *t)
{
    PyObject *name = tag_name(t, NULL);
    if (name == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("<RequestTag %S id=%S>", name, t->request_id);
    Py_DECREF(name);
    return r;
}

#define OBJ(n) {#n, T_OBJECT, offsetof(TagObject, n), 0, NULL}
static PyMemberDef tag_members[] = {
    OBJ(method), OBJ(target), OBJ(target_key), OBJ(request_id), OBJ(session_id), OBJ(labels), OBJ(error),
    {"start_ns", T_LONGLONG, offsetof(TagObject, start_ns), 0, NULL},
    {"cpu_ns", T_LONGLONG, offsetof(TagObject, cpu_ns), 0, "exact CPU charged to this request"},
    {"duration_ns", T_LONGLONG, offsetof(TagObject, duration_ns), 0, NULL},
    {NULL},
};
static PyGetSetDef tag_getset[] = {{"name", (getter)tag_name, NULL, NULL, NULL}, {NULL}};

static PyTypeObject TagType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mcpprof.mcp._hooks.RequestTag",
    .tp_basicsize = sizeof(TagObject),
    .tp_dealloc = (destructor)tag_dealloc,
    .tp_repr = (reprfunc)tag_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The MCP request a piece of work belongs to (see mcpprof.mcp.context.RequestTag).",
    .tp_members = tag_members,
    .tp_getset = tag_getset,
    .tp_new = tag_tp_new,
};

static void charge(PyObject *tag, long long ns)
{
    if (Py_IS_TYPE(tag, &TagType)) {
        ((TagObject *)tag)->cpu_ns += ns;
        return;
    }
    PyObject *type, *value, *tb;  /* a tag of another kind: through its attribute */
    PyErr_Fetch(&type, &value, &tb);
    PyObject *old = PyObject_GetAttr(tag, s_cpu_ns), *delta = PyLong_FromLongLong(ns);
    PyObject *sum = old && delta ? PyNumber_Add(old, delta) : NULL;
    if (sum == NULL || PyObject_SetAttr(tag, s_cpu_ns, sum) < 0)
        PyErr_Clear();
    Py_XDECREF(old);
    Py_XDECREF(delta);
    Py_XDECREF(sum);
    PyErr_Restore(type, value, tb);
}

/* tag_for(method, params, request_id) in C; NULL with an exception on failure */
static PyObject *make_tag(PyObject *method, PyObject *params, PyObject *request_id)
{
    PyObject *target = S.empty, *key = S.empty, *owned = NULL;
    if (!PyUnicode_Check(method)) {
        PyErr_SetString(PyExc_TypeError, "method must be str");
        return NULL;
    }
    if (params != Py_None) {
        PyObject *spec = PyDict_GetItemWithError(S.targets, method);  /* (field, label key) */
        if (spec == NULL && PyErr_Occurred())
            return NULL;
        if (spec == NULL && PyUnicode_Tailmatch(method, s_resources, 0, PY_SSIZE_T_MAX, -1) == 1)
            spec = S.resource_spec;
        if (spec != NULL) {
            PyObject *field = PyTuple_GET_ITEM(spec, 0), *value;
            key = PyTuple_GET_ITEM(spec, 1);
            if (PyDict_CheckExact(params)) {
                value = PyDict_GetItemWithError(params, field);
                Py_XINCREF(value);
            } else if ((value = PyObject_GetAttr(params, field)) == NULL &&
                       PyErr_ExceptionMatches(PyExc_AttributeError)) {
                PyErr_Clear();
            }
            if (value == NULL && PyErr_Occurred())
                return NULL;
            if (value != NULL && value != Py_None) {
                owned = PyUnicode_CheckExact(value) ? Py_NewRef(value) : PyObject_Str(value);
                if (owned == NULL) {
                    Py_DECREF(value);
                    return NULL;
                }
                target = owned;
            }
            Py_XDECREF(value);
        }
    }
    TagObject *t = tag_new_raw();
    if (t == NULL || tag_set_names(t, method, target, key) < 0) {
        Py_XDECREF(owned);
        Py_XDECREF(t);
        return NULL;
    }
    Py_XDECREF(owned);
    /* a string id is copied (made by mcpprof, not the server's JSON parser): the span ring keeps
     * the last ids, and a leak check must not see the parser's strings kept per call */
    PyObject *rid;
    if (request_id == Py_None)
        rid = Py_NewRef(S.empty);
    else if (PyUnicode_CheckExact(request_id))
        rid = PyUnicode_FromKindAndData(PyUnicode_KIND(request_id), PyUnicode_DATA(request_id),
                                        PyUnicode_GET_LENGTH(request_id));
    else
        rid = PyObject_Str(request_id);
    if (rid == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    Py_SETREF(t->request_id, rid);
    t->start_ns = mono_ns();
    return (PyObject *)t;
}

static PyObject *hooks_tag_for(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *names[] = {"method", "params", "request_id", "session_id", NULL};
    PyObject *method, *params, *rid = Py_None, *sid = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO:tag_for", names, &method, &params, &rid, &sid))
        return NULL;
    PyObject *t = make_tag(method, params, rid);
    if (t != NULL && sid != Py_None) {
        PyObject *text = PyObject_Str(sid);
        if (text == NULL)
            Py_CLEAR(t);
        else
            Py_SETREF(((TagObject *)t)->session_id, text);
    }
    return t;
}

/* -- Step ------------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *inner, *it, *tag;
    PyObject *token, *task, *prev;  /* request mode: what leaving the request restores */
    char request, tool_call, done;
} StepObject;

static PyTypeObject StepType;

static int step_traverse(StepObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->inner); Py_VISIT(s->it); Py_VISIT(s->tag); Py_VISIT(s->token); Py_VISIT(s->task);
    Py_VISIT(s->prev);
    return 0;
}

static int step_clear(StepObject *s)
{
    Py_CLEAR(s->inner); Py_CLEAR(s->it); Py_CLEAR(s->tag); Py_CLEAR(s->token); Py_CLEAR(s->task);
    Py_CLEAR(s->prev);
    return 0;
}

static void step_dealloc(StepObject *s)
{
    PyObject_GC_UnTrack(s);
    if (s->request && !s->done && s->task != NULL) {  /* dropped unawaited: forget its task's tag */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if ((s->prev == NULL || s->prev == Py_None ? PyDict_DelItem(S.task_tags, s->task)
                                                   : PyDict_SetItem(S.task_tags, s->task, s->prev)) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    step_clear(s);
    PyObject_GC_Del(s);
}

/* what is stepped: the coroutine or generator itself, else its __await__() */
static PyObject *iter_of(PyObject *aw)
{
    PyTypeObject *t = Py_TYPE(aw);
    if (PyCoro_CheckExact(aw) || PyGen_CheckExact(aw) || (t->tp_as_async && t->tp_as_async->am_send))
        return Py_NewRef(aw);
    if (PyObject_HasAttr(aw, s_send) && PyObject_HasAttr(aw, s_throw))
        return Py_NewRef(aw);
    return PyObject_CallMethodNoArgs(aw, s_await);
}

static StepObject *step_new(PyObject *inner, PyObject *tag)
{
    StepObject *s = PyObject_GC_New(StepObject, &StepType);
    if (s == NULL)
        return NULL;
    s->inner = s->it = s->token = s->task = s->prev = NULL;
    s->tag = Py_NewRef(tag);
    s->request = s->tool_call = s->done = 0;
    if (inner != NULL) {
        s->inner = Py_NewRef(inner);
        if ((s->it = iter_of(inner)) == NULL) {
            Py_DECREF(s);
            return NULL;
        }
    }
    PyObject_GC_Track(s);
    return s;
}

static PyObject *hooks_metered(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "Metered(awaitable, tag)");
        return NULL;
    }
    return (PyObject *)step_new(args[0], args[1]);
}

/* enter the request of s->tag on this thread (ContextVar, task -> tag); -1 leaves nothing changed */
static int request_enter(StepObject *s)
{
    if (!S.serving) {
        PyObject *r = PyObject_CallNoArgs(S.first_request);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        S.serving = 1;
    }
    PyObject *loop = PyObject_CallNoArgs(S.get_running_loop);
    if (loop == NULL)
        return -1;
    PyObject *task = NULL;
    if (loop != Py_None) {
        PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
        if (ident == NULL)
            goto fail;
        PyObject *known = PyDict_GetItemWithError(S.loops, ident);
        int bad = (known != loop) && (PyErr_Occurred() || PyDict_SetItem(S.loops, ident, loop) < 0);
        Py_DECREF(ident);
        if (bad)
            goto fail;
        int has = PyDict_Contains(S.factory_loops, loop);
        if (has < 0)
            goto fail;
        if (!has) {
            PyObject *r = PyObject_CallOneArg(S.install_factory, loop);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
        }
        task = PyDict_GetItemWithError(S.current_tasks, loop);
        if (task == NULL && PyErr_Occurred())
            goto fail;
    }
    if (task != NULL) {
        PyObject *prev = PyDict_GetItemWithError(S.task_tags, task);
        if (prev == NULL && PyErr_Occurred())
            goto fail;
        if (PyDict_SetItem(S.task_tags, task, s->tag) < 0)
            goto fail;
        s->task = Py_NewRef(task);
        s->prev = Py_XNewRef(prev);
    }
    s->token = PyContextVar_Set(S.current, s->tag);
    if (s->token == NULL) {
        if (s->task != NULL && (s->prev == NULL ? PyDict_DelItem(S.task_tags, s->task)
                                                : PyDict_SetItem(S.task_tags, s->task, s->prev)) < 0)
            PyErr_Clear();
        Py_CLEAR(s->task);
        Py_CLEAR(s->prev);
        goto fail;
    }
    Py_DECREF(loop);
    s->request = 1;
    return 0;
fail:
    Py_DECREF(loop);
    return -1;
}

/* leave the request: result is the return value, or NULL when an exception is set (kept set) */
static void request_exit(StepObject *s, PyObject *result)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL, *error = NULL;
    TagObject *t = (TagObject *)s->tag;
    long long end = mono_ns();
    s->done = 1;
    if (result == NULL) {
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        error = PyObject_CallOneArg(S.error_kind, value ? value : Py_None);
    } else if (s->tool_call) {
        PyObject *flag = NULL;
        if (PyDict_CheckExact(result)) {
            flag = PyDict_GetItemWithError(result, s_isError);
            Py_XINCREF(flag);
        } else {
            flag = PyObject_GetAttr(result, s_is_error);
        }
        if (flag == Py_True)
            error = Py_NewRef(S.tool_error);
        Py_XDECREF(flag);
    }
    if (PyErr_Occurred())
        PyErr_Clear();
    if (s->task != NULL) {
        int r = s->prev == NULL || s->prev == Py_None ? PyDict_DelItem(S.task_tags, s->task)
                                                      : PyDict_SetItem(S.task_tags, s->task, s->prev);
        if (r < 0)
            PyErr_Clear();
    }
    if (s->token != NULL && PyContextVar_Reset(S.current, s->token) < 0)
        PyErr_Clear();  /* reset from another context: leave the variable alone */
    Py_CLEAR(s->token);
    Py_CLEAR(s->task);
    Py_CLEAR(s->prev);
    int ended = 1;
    if (Py_IS_TYPE(s->tag, &TagType)) {
        t->duration_ns = end - t->start_ns;
        Py_XSETREF(t->error, error ? error : Py_NewRef(Py_None));
        error = NULL;
    } else {  /* a tag of another kind (PyRequestTag): through its attributes */
        PyObject *start = PyObject_GetAttrString(s->tag, "start_ns");
        long long start_ns = start ? PyLong_AsLongLong(start) : 0;
        PyObject *duration = PyErr_Occurred() ? NULL : PyLong_FromLongLong(end - start_ns);
        ended = duration != NULL && PyObject_SetAttrString(s->tag, "duration_ns", duration) == 0 &&
                PyObject_SetAttrString(s->tag, "error", error ? error : Py_None) == 0;
        Py_XDECREF(start);
        Py_XDECREF(duration);
        if (!ended)
            PyErr_Clear();
    }
    if (ended) {
        if (PyList_GET_SIZE(S.sinks) > 0) {
            PyObject *r = PyObject_CallOneArg(S.finished_append, s->tag);
            if (r != NULL && PyObject_Size(S.finished) >= DRAIN_AT) {
                Py_DECREF(r);
                r = PyObject_CallNoArgs(S.drain);  /* nobody drained for long: do it here */
            }
            if (r == NULL)
                PyErr_Clear();
            Py_XDECREF(r);
        }
    }
    Py_XDECREF(error);
    if (result == NULL)
        PyErr_Restore(type, value, tb);
}

/* one step: send arg (exc == NULL) or throw exc into the stepped iterator */
static PySendResult step_do(StepObject *s, PyObject *arg, PyObject *const *exc, Py_ssize_t nexc,
                            PyObject **result)
{
    PySendResult r;
    if (s->it == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    int meter = S.metering || !s->request;  /* a request is metered while the hooks are installed */
    long long t0 = meter ? thread_cpu_ns() : 0;
    if (exc == NULL) {
        r = PyIter_Send(s->it, arg, result);
    } else {
        PyObject *args[4] = {s->it, exc[0], nexc > 1 ? exc[1] : NULL, nexc > 2 ? exc[2] : NULL};
        *result = PyObject_VectorcallMethod(s_throw, args, (size_t)(1 + nexc), NULL);
        if (*result != NULL)
            r = PYGEN_NEXT;
        else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            *result = Py_NewRef(value ? ((PyStopIterationObject *)value)->value : Py_None);
            Py_XDECREF(type); Py_XDECREF(value); Py_XDECREF(tb);
            r = PYGEN_RETURN;
        } else
            r = PYGEN_ERROR;
    }
    if (meter)
        charge(s->tag, thread_cpu_ns() - t0);
    if (r != PYGEN_NEXT) {
        Py_CLEAR(s->it);
        if (s->request && !s->done)
            request_exit(s, r == PYGEN_RETURN ? *result : NULL);
    }
    return r;
}

static PySendResult step_am_send(StepObject *s, PyObject *arg, PyObject **result)
{
    return step_do(s, arg, NULL, 0, result);
}

static PyObject *returned(PySendResult r, PyObject *result)
{
    if (r != PYGEN_RETURN)
        return result;
    if (result == Py_None)
        PyErr_SetNone(PyExc_StopIteration);
    else {
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, result);
        if (e != NULL) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    Py_DECREF(result);
    return NULL;
}

static PyObject *step_iternext(StepObject *s)
{
    PyObject *result = NULL;
    PySendResult r = step_do(s, Py_None, NULL, 0, &result);  /* before reading result */
    return returned(r, result);
}

static PyObject *step_send(StepObject *s, PyObject *arg)
{
    PyObject *result = NULL;
    PySendResult r = step_do(s, arg, NULL, 0, &result);
    return returned(r, result);
}

static PyObject *step_throw(StepObject *s, PyObject *const *args, Py_ssize_t n)
{
    PyObject *result = NULL;
    if (n < 1 || n > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    while (n > 1 && args[n - 1] == Py_None)
        n--;
    PySendResult r = step_do(s, NULL, args, n, &result);
    return returned(r, result);
}

static PyObject *step_close(StepObject *s, PyObject *unused)
{
    if (s->it != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(s->it, s_close);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_CLEAR(s->it);
    }
    if (s->request && !s->done) {  /* closed before it finished: left as cancelled */
        PyErr_SetNone(PyExc_GeneratorExit);
        request_exit(s, NULL);
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

static PyObject *step_self(PyObject *s) { return Py_NewRef(s); }
static PyObject *step_self_noargs(PyObject *s, PyObject *unused) { return Py_NewRef(s); }

static PyObject *inner_attr(StepObject *s, const char *name)
{
    if (s->inner == NULL)
        Py_RETURN_NONE;
    PyObject *r = PyObject_GetAttrString(s->inner, name);
    if (r == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return r;
}
static PyObject *step_cr_frame(StepObject *s, void *u) { return inner_attr(s, "cr_frame"); }
static PyObject *step_cr_await(StepObject *s, void *u) { return inner_attr(s, "cr_await"); }
static PyObject *step_cr_code(StepObject *s, void *u) { return inner_attr(s, "cr_code"); }
static PyObject *step_cr_running(StepObject *s, void *u)
{
    PyObject *r = inner_attr(s, "cr_running");
    if (r == NULL)
        return NULL;
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    return truth < 0 ? NULL : PyBool_FromLong(truth);
}

static PyMethodDef step_methods[] = {
    {"send", (PyCFunction)step_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))step_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)step_close, METH_NOARGS, NULL},
    {"__await__", (PyCFunction)step_self_noargs, METH_NOARGS, NULL},
    {NULL},
};
static PyGetSetDef step_getset[] = {
    {"cr_frame", (getter)step_cr_frame, NULL, NULL, NULL},
    {"cr_await", (getter)step_cr_await, NULL, NULL, NULL},
    {"cr_code", (getter)step_cr_code, NULL, NULL, NULL},
    {"cr_running", (getter)step_cr_running, NULL, NULL, NULL},
    {NULL},
};
static PyAsyncMethods step_async = {.am_await = step_self, .am_send = (sendfunc)step_am_send};

static PyTypeObject StepType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mcpprof.mcp._hooks.Metered",
    .tp_basicsize = sizeof(StepObject),
    .tp_dealloc = (destructor)step_dealloc,
    .tp_as_async = &step_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An awaitable whose every step charges the thread CPU it takes to a request tag.",
    .tp_traverse = (traverseproc)step_traverse,
    .tp_clear = (inquiry)step_clear,
    .tp_iter = step_self,
    .tp_iternext = (iternextfunc)step_iternext,
    .tp_methods = step_methods,
    .tp_getset = step_getset,
};

/* sdk2_call(ctx, call_next): the mcp 2.x ServerMiddleware body */
static PyObject *hooks_sdk2_call(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "middleware(ctx, call_next)");
        return NULL;
    }
    PyObject *ctx = args[0], *call_next = args[1], *tag = NULL;
    StepObject *s = NULL;
    PyObject *method = PyObject_GetAttr(ctx, s_method);
    PyObject *params = method ? PyObject_GetAttr(ctx, s_params) : NULL;
    PyObject *rid = params ? PyObject_GetAttr(ctx, s_request_id) : NULL;
    if (rid != NULL)
        tag = make_tag(method, params, rid);
    if (tag != NULL && (s = step_new(NULL, tag)) != NULL && request_enter(s) < 0)
        Py_CLEAR(s);
    if (s != NULL && PyUnicode_Check(method))
        s->tool_call = PyUnicode_CompareWithASCIIString(method, "tools/call") == 0;
    Py_XDECREF(method); Py_XDECREF(params); Py_XDECREF(rid); Py_XDECREF(tag);
    if (s == NULL) {  /* tagging broke: the request runs untagged */
        PyErr_Clear();
        return PyObject_CallOneArg(call_next, ctx);
    }
    PyObject *coro = PyObject_CallOneArg(call_next, ctx);
    if (coro == NULL || (s->inner = coro, (s->it = iter_of(coro)) == NULL)) {
        request_exit(s, NULL);
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

/* request(awaitable, tag, tool_call): a Step that enters now and leaves when done (other adapters) */
static PyObject *hooks_request(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    if (n != 3) {
        PyErr_SetString(PyExc_TypeError, "request(awaitable, tag, tool_call)");
        return NULL;
    }
    StepObject *s = step_new(args[0], args[1]);
    if (s == NULL)
        return NULL;
    s->tool_call = (char)PyObject_IsTrue(args[2]);
    if (request_enter(s) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

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

static PyObject *tagged_vectorcall(WrapObject *w, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL)
        return NULL;
    PyObject *prev = PyDict_GetItemWithError(S.thread_tags, ident);
    Py_XINCREF(prev);
    int tagged = !PyErr_Occurred() && PyDict_SetItem(S.thread_tags, ident, w->tag) == 0;
    if (!tagged)
        PyErr_Clear();
    long long t0 = thread_cpu_ns();
    PyObject *r = PyObject_Vectorcall(w->wrapped, args, nargsf, kwnames);
    charge(w->tag, thread_cpu_ns() - t0);
    if (tagged) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if ((prev == NULL ? PyDict_DelItem(S.thread_tags, ident) : PyDict_SetItem(S.thread_tags, ident, prev)) < 0)
            PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(prev);
    Py_DECREF(ident);
    return r;
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

/* -- module ---------------------------------------------------------------------------------- */

static PyObject *hooks_frames_and_tags(PyObject *mod, PyObject *unused)
{
    PyObject *frames = _PyThread_CurrentFrames();
    if (frames == NULL)
        return NULL;
    PyObject *tags = S.thread_tags ? PyDict_Copy(S.thread_tags) : PyDict_New();
    if (tags == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    PyObject *r = PyTuple_Pack(2, frames, tags);
    Py_DECREF(frames);
    Py_DECREF(tags);
    return r;
}

/* configure(**objects): every name below, once, before any other call */
static PyObject *hooks_configure(PyObject *mod, PyObject *args, PyObject *kw)
{
    struct { const char *name; PyObject **slot; PyTypeObject *type; } spec[] = {
        {"current", &S.current, &PyContextVar_Type}, {"task_tags", &S.task_tags, &PyDict_Type},
        {"thread_tags", &S.thread_tags, &PyDict_Type}, {"loops", &S.loops, &PyDict_Type},
        {"current_tasks", &S.current_tasks, &PyDict_Type}, {"factory_loops", &S.factory_loops, &PyDict_Type},
        {"install_factory", &S.install_factory, NULL}, {"finished", &S.finished, NULL},
        {"drain", &S.drain, NULL}, {"sinks", &S.sinks, &PyList_Type}, {"label_entry", &S.label_entry, NULL},
        {"label_cache", &S.label_cache, &PyDict_Type}, {"error_kind", &S.error_kind, NULL},
        {"first_request", &S.first_request, NULL}, {"get_running_loop", &S.get_running_loop, NULL},
        {"task_type", &S.task_type, NULL}, {"forget_task", &S.forget_task, NULL},
        {"targets", &S.targets, &PyDict_Type}, {"resource_spec", &S.resource_spec, &PyTuple_Type},
        {"tool_error", &S.tool_error, &PyUnicode_Type},
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
    for (size_t i = 0; i < count; i++)
        Py_XSETREF(*spec[i].slot, Py_NewRef(PyDict_GetItemString(kw, spec[i].name)));
    Py_XSETREF(S.finished_append, append);
    Py_RETURN_NONE;
}

static PyObject *hooks_set_flags(PyObject *mod, PyObject *args)
{
    int serving, metering;
    if (!PyArg_ParseTuple(args, "pp:set_flags", &serving, &metering))
        return NULL;
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
    {"tag_for", (PyCFunction)(void (*)(void))hooks_tag_for, METH_VARARGS | METH_KEYWORDS,
     "tag_for(method, params, request_id=None, session_id=None)"},
    {"metered", (PyCFunction)(void (*)(void))hooks_metered, METH_FASTCALL, "metered(awaitable, tag)"},
    {"request", (PyCFunction)(void (*)(void))hooks_request, METH_FASTCALL, "request(awaitable, tag, tool_call)"},
    {"sdk2_call", (PyCFunction)(void (*)(void))hooks_sdk2_call, METH_FASTCALL, "sdk2_call(ctx, call_next)"},
    {"tagged", (PyCFunction)(void (*)(void))hooks_tagged, METH_FASTCALL, "tagged(func, tag)"},
    {"thread_hook", hooks_thread_hook, METH_O, "thread_hook(run_sync or to_thread): the wrapped function"},
    {"frames_and_tags", hooks_frames_and_tags, METH_NOARGS, "(sys._current_frames(), copy of thread_tags)"},
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
