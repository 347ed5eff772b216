/* _timer: the sampler's SIGALRM timer aimed at one thread (mcpprof.collect.timer).
 *
 * An optional accelerator, built by setup.py with optional=True. setitimer(ITIMER_REAL) signals
 * the process, and the kernel hands a process signal to any thread that does not block it: in a
 * busy server about a third of the ticks woke another thread (a worker waiting for the GIL, the
 * agent's threads waiting on an Event, which then take the GIL to run no handler). A POSIX timer
 * with SIGEV_THREAD_ID (Linux) sends SIGALRM to the thread that armed it, the main thread, only.
 * Where that is not available, start() returns False and the sampler uses setitimer.
 *
 *   start(period_s) -> bool  arm a CLOCK_MONOTONIC timer signalling the calling thread every
 *                            period_s seconds (re-arms the same timer when already armed);
 *   stop() -> None           disarm and delete it (nothing when none is armed);
 *   armed() -> bool          whether one is armed.
 *
 * A forked child has no timers (POSIX), so it starts with none armed, as after setitimer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__linux__) && defined(SIGEV_THREAD_ID) && defined(SYS_gettid)
#define THREAD_TIMER 1
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
static timer_t timer;
#endif
static int timer_on = 0;

static void forget_in_child(void)  /* the child inherits the flag but not the timer */
{
    timer_on = 0;
}

static PyObject *timer_start(PyObject *mod, PyObject *arg)
{
    double period = PyFloat_AsDouble(arg);
    if (period == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(period > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "period must be > 0");
        return NULL;
    }
#ifdef THREAD_TIMER
    if (!timer_on) {
        struct sigevent sev;
        memset(&sev, 0, sizeof sev);
        sev.sigev_notify = SIGEV_THREAD_ID;
        sev.sigev_signo = SIGALRM;
        sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
        if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0)
            Py_RETURN_FALSE;
        timer_on = 1;
    }
    struct itimerspec its;
    time_t sec = (time_t)period;
    long nsec = (long)((period - (double)sec) * 1e9);
    if (sec == 0 && nsec == 0)
        nsec = 1;
    its.it_interval.tv_sec = its.it_value.tv_sec = sec;
    its.it_interval.tv_nsec = its.it_value.tv_nsec = nsec;
    if (timer_settime(timer, 0, &its, NULL) != 0) {
        timer_delete(timer);
        timer_on = 0;
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *timer_stop(PyObject *mod, PyObject *unused)
{
#ifdef THREAD_TIMER
    if (timer_on) {
        timer_delete(timer);  /* disarms it; a signal already queued is still delivered */
        timer_on = 0;
    }
#endif
    Py_RETURN_NONE;
}

static PyObject *timer_armed(PyObject *mod, PyObject *unused)
{
    return PyBool_FromLong(timer_on);
}

static PyMethodDef timer_methods[] = {
    {"start", timer_start, METH_O, "start(period_s) -> bool: SIGALRM to the calling thread every period_s"},
    {"stop", timer_stop, METH_NOARGS, "stop(): disarm and delete the timer"},
    {"armed", timer_armed, METH_NOARGS, "armed() -> bool"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_timer", "The sampler's SIGALRM timer aimed at one thread (see mcpprof.collect.timer).",
    -1, timer_methods,
};

PyMODINIT_FUNC PyInit__timer(void)
{
    if (pthread_atfork(NULL, NULL, forget_in_child) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_atfork failed");
        return NULL;
    }
    return PyModule_Create(&module);
}
