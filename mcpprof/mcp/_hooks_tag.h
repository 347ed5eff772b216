/* _hooks_tag.h: the request tag type and tag_for (see _hooks.c). Included once by _hooks.c. */

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
