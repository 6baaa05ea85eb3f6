"""A deadline on the last part of a node process's exit, kept by a native timer thread (no GIL).

Once a node process has stopped its nodes (workers joined, outputs flushed), what is left is the DDS
teardown (rcl/rmw destroy the participant) and interpreter finalization. Under Fast DDS 3.2 the
participant's destruction can livelock with its own discovery threads when many peers leave at once
(a whole launch group stopped): seen in ``test/test_shutdown_signals.py`` about once in 20 group
runs, gdb showing the main thread in ``DomainParticipant::set_listener(nullptr)`` under
``rmw_destroy_node`` while a discovery thread waits for the participant's listener mutex inside
``on_writer_discovery``. The main thread holds the GIL there, so no Python thread or signal handler
can end the process: it ran until SIGKILL.

:func:`arm_exit_deadline` starts two POSIX timers with ``SIGEV_THREAD`` notification whose functions
are libc's own ``puts`` (the message) and ``_exit`` (the process's exit code): glibc runs them in a thread of their
own, without Python, so they fire whatever the main thread is stuck in. A process that exits in time
never sees them. The exit code is the one the process was exiting with (0 after a stop): it did all its
own work before the deadline was armed; only the middleware's teardown was cut short (peers then drop
its participant by lease expiry).
"""
import ctypes
import ctypes.util
import faulthandler
import io
import sys

_SIGEV_THREAD = 2
_CLOCK_MONOTONIC = 1
_IONBF = 2
_KEEP: list = []   # the sigevents and timers live as long as the process


class _Sigevent(ctypes.Structure):
    """struct sigevent of Linux/glibc on 64-bit targets (64 bytes): sigval, signo, notify, then the
    SIGEV_THREAD function and its thread attributes."""
    _fields_ = [('value', ctypes.c_void_p), ('signo', ctypes.c_int), ('notify', ctypes.c_int),
                ('function', ctypes.c_void_p), ('attributes', ctypes.c_void_p), ('_pad', ctypes.c_char * 32)]


class _Timespec(ctypes.Structure):
    _fields_ = [('sec', ctypes.c_long), ('nsec', ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [('interval', _Timespec), ('value', _Timespec)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, 'timer_create'):      # glibc before 2.34 keeps the timers in librt
        libc = ctypes.CDLL(ctypes.util.find_library('rt'), use_errno=True)
    return libc


def _start_timer(libc, seconds: float, function, value) -> ctypes.c_void_p:
    event = _Sigevent(value=value, notify=_SIGEV_THREAD, function=ctypes.cast(function, ctypes.c_void_p).value)
    timer = ctypes.c_void_p()
    if libc.timer_create(_CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) != 0:
        raise OSError(ctypes.get_errno(), 'timer_create failed')
    _KEEP.append((event, timer))
    sec, nsec = divmod(int(round(seconds * 1e9)), 10 ** 9)
    spec = _Itimerspec(value=_Timespec(sec, nsec))
    if libc.timer_settime(timer, 0, ctypes.byref(spec), None) != 0:
        errno = ctypes.get_errno()
        libc.timer_delete(timer)
        raise OSError(errno, 'timer_settime failed')
    return timer


def arm_exit_deadline(seconds: float, message: str, code: int = 0) -> bool:
    """End this process with exit code ``code`` ``seconds`` from now, whatever it is doing then; ``message``
    (one line) goes to stdout first. Only for a process that has finished its own work and is
    exiting: nothing disarms it. Returns False (and says why on stderr) where the platform has no
    POSIX timers; the process then exits as it would have without the deadline."""
    if seconds <= 0:
        raise ValueError(f'exit deadline must be > 0 s, got {seconds}')
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    libc, started = None, []
    try:
        libc = _libc()
        # the text in C's heap, never freed: Python frees its own objects while it finalizes, and the
        # deadline may fire after that (a hang in a C++ static destructor)
        libc.strdup.restype = ctypes.c_void_p
        text = libc.strdup(message.replace('\n', ' ').encode())
        if not text:
            raise OSError(ctypes.get_errno(), 'strdup failed')
        # the exit first: a message is never printed without it
        started.append(_start_timer(libc, seconds + 0.2, libc._exit, int(code) or None))   # sigval: _exit's argument
        # C's stdout unbuffered: _exit does not flush stdio buffers
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, 'stdout'), None, _IONBF, 0)
        started.append(_start_timer(libc, seconds, libc.puts, text))
    except (OSError, AttributeError, ValueError, TypeError) as exc:
        for timer in started:
            libc.timer_delete(timer)
        print(f'exit deadline not armed ({exc}): a hung DDS teardown would keep this process', file=sys.stderr)
        return False
    try:   # where it is stuck, just before, on the message's stream: faulthandler's watchdog is a native thread too
        faulthandler.dump_traceback_later(max(seconds - 0.1, 0.05), repeat=False, file=sys.stdout, exit=False)
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        pass    # no stdout to write to (the deadline still holds)
    return True
