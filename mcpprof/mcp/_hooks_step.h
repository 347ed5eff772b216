/* _hooks_step.h: the metered awaitable, entering and leaving a request, the mcp 2.x middleware body (see _hooks.c). Included once by _hooks.c. */

/* -- Step ------------------------------------------------------------------------------------ */

typedef struct StepObject {
    PyObject_HEAD
    PyObject *inner, *it, *tag;
    PyObject *token, *task;  /* request mode: the ContextVar token to reset, the task it entered on */
    struct StepObject *in_prev, *in_next;  /* request mode: the list of requests in flight */
    char request, tool_call, done, linked;
} StepObject;

static PyTypeObject StepType;

/* Requests in flight, newest first: a doubly linked list through the Steps themselves (no
 * references held; a Step leaves it when its request ends or when it is freed). */
static StepObject *inflight_head = NULL;

static void inflight_link(StepObject *s)
{
    s->in_prev = NULL;
    s->in_next = inflight_head;
    if (inflight_head != NULL)
        inflight_head->in_prev = s;
    inflight_head = s;
    s->linked = 1;
}

static void inflight_unlink(StepObject *s)
{
    if (!s->linked)
        return;
    if (s->in_prev != NULL)
        s->in_prev->in_next = s->in_next;
    else
        inflight_head = s->in_next;
    if (s->in_next != NULL)
        s->in_next->in_prev = s->in_prev;
    s->in_prev = s->in_next = NULL;
    s->linked = 0;
}

static int step_traverse(StepObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->inner); Py_VISIT(s->it); Py_VISIT(s->tag); Py_VISIT(s->token); Py_VISIT(s->task);
    return 0;
}

static int step_clear(StepObject *s)
{
    Py_CLEAR(s->inner); Py_CLEAR(s->it); Py_CLEAR(s->tag); Py_CLEAR(s->token); Py_CLEAR(s->task);
    return 0;
}

static void step_dealloc(StepObject *s)
{
    PyObject_GC_UnTrack(s);
    inflight_unlink(s);  /* dropped unawaited: no longer in flight */
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
    s->inner = s->it = s->token = s->task = NULL;
    s->in_prev = s->in_next = NULL;
    s->tag = Py_NewRef(tag);
    s->request = s->tool_call = s->done = s->linked = 0;
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

/* enter the request of s->tag on this thread: set the ContextVar (samplers read it from each
 * thread's current context) and join the in-flight list; -1 leaves nothing changed */
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
        if (loop != S.last_loop) {  /* a loop not seen last time: note its thread (and factory) */
            PyObject *r = PyObject_CallOneArg(S.note_loop, loop);
            if (r == NULL)
                goto fail;
            Py_DECREF(r);
            Py_XSETREF(S.last_loop, Py_NewRef(loop));
        }
        task = PyDict_GetItemWithError(S.current_tasks, loop);
        if (task == NULL && PyErr_Occurred())
            goto fail;
    }
    s->token = PyContextVar_Set(S.current, s->tag);
    if (s->token == NULL)
        goto fail;
    s->task = Py_XNewRef(task);
    Py_DECREF(loop);
    s->request = 1;
    inflight_link(s);
    return 0;
fail:
    Py_DECREF(loop);
    return -1;
}

/* the request has ended with error (a new reference or NULL for success; stolen): leave it */
static void request_finish(StepObject *s, PyObject *error)
{
    TagObject *t = (TagObject *)s->tag;
    long long end = mono_ns();
    s->done = 1;
    inflight_unlink(s);
    if (s->token != NULL && PyContextVar_Reset(S.current, s->token) < 0)
        PyErr_Clear();  /* reset from another context: leave the variable alone */
    Py_CLEAR(s->token);
    Py_CLEAR(s->task);
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
    if (ended && PyList_GET_SIZE(S.sinks) > 0) {
        PyObject *r = PyObject_CallOneArg(S.finished_append, s->tag);
        if (r != NULL && PyObject_Size(S.finished) >= drain_at) {
            Py_DECREF(r);
            r = PyObject_CallNoArgs(S.drain);  /* nobody drained for long: do it here */
        }
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_XDECREF(error);
}

/* leave the request: result is the return value, or NULL when an exception is set (kept set) */
static void request_exit(StepObject *s, PyObject *result)
{
    PyObject *type = NULL, *value = NULL, *tb = NULL, *error = NULL;
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
    request_finish(s, error);
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

/* enter(tag): a Step with nothing to step that holds the request entered now (mcp 1.x adapter) */
static PyObject *hooks_enter(PyObject *mod, PyObject *tag)
{
    StepObject *s = step_new(NULL, tag);
    if (s == NULL)
        return NULL;
    if (request_enter(s) < 0) {
        Py_DECREF(s);
        return NULL;
    }
    return (PyObject *)s;
}

/* leave(handle, error): end the request entered by enter() with that error kind (None: success) */
static PyObject *hooks_leave(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    if (n != 2 || !Py_IS_TYPE(args[0], &StepType)) {
        PyErr_SetString(PyExc_TypeError, "leave(handle from enter(), error)");
        return NULL;
    }
    StepObject *s = (StepObject *)args[0];
    if (s->request && !s->done)
        request_finish(s, args[1] == Py_None ? NULL : Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* inflight(): [(task or None, tag)] of the requests in flight, newest first */
static PyObject *hooks_inflight(PyObject *mod, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    for (StepObject *s = inflight_head; out != NULL && s != NULL; s = s->in_next) {
        if (s->tag == NULL)
            continue;
        PyObject *pair = PyTuple_Pack(2, s->task ? s->task : Py_None, s->tag);
        if (pair == NULL || PyList_Append(out, pair) < 0)
            Py_CLEAR(out);
        Py_XDECREF(pair);
    }
    return out;
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
