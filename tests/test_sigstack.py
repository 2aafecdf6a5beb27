"""nas.sigstack: OpenVINO's CPU plugin leaves no thread on an unmapped alternate signal stack, whatever order its
runners are freed in, so a signal (Ctrl-C) still reaches Python's handler."""

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import relu_onnx

from nas.sigstack import _sigaltstack, _Stack, signal_stack, signal_stack_kept

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack of Linux's kind")


def test_the_stack_a_block_sets_is_put_back_as_it_was():
    before = signal_stack()
    other = ctypes.create_string_buffer(64 * 1024)
    with signal_stack_kept():
        _sigaltstack(_Stack(ctypes.addressof(other), 0, len(other)))  # what OpenVINO's CPU plugin does as it is made
        assert signal_stack() == (ctypes.addressof(other), len(other), 0)
    assert signal_stack() == before


def test_ctrl_c_after_openvino_runners_replaced_in_a_loop_raises_keyboardinterrupt(tmp_path):
    # Each runner's CPU plugin made its own signal stack the thread's, remembering the one before (the previous plugin's),
    # and unmapped its own when freed: runners replaced in a loop (each freed after the next was made), then the last
    # one freed, left the thread on an earlier plugin's unmapped stack, and Ctrl-C (a notebook's interrupt) ended the
    # process with SIGSEGV inside kill() instead of raising KeyboardInterrupt. faulthandler.enable() as pytest and
    # ipykernel do (its own stack is the one to come back to; without it the crash was the same).
    code = (
        "import faulthandler, os, signal, sys, time\n"
        "faulthandler.enable()\n"
        # Python's own SIGINT handler, as a terminal or a notebook gives it: a process started from a background job
        # (CI's shell) inherits SIGINT ignored, and the signal would then never reach a handler
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from nas.latency.measure import make_runner\n"
        "run = None\n"
        "for _ in range(3):\n"
        "    run = make_runner(sys.argv[1], runtime='openvino', precision='fp32', threads=1, input_shape=(1, 1, 4, 4))\n"
        "del run\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped')\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(relu_onnx(tmp_path / "relu.onnx"))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "stopped\n"), done.stderr[-2000:]


@pytest.mark.parametrize("error", [OSError(1, "Operation not permitted"), AttributeError("sigaltstack")])
def test_a_stack_that_cannot_be_read_or_set_never_fails_the_block_it_wraps(monkeypatch, error):
    # a seccomp filter refusing sigaltstack (EPERM) or a C library without it (AttributeError from ctypes): the block
    # is a safeguard around OpenVINO's compile, and raised before the compile ran, or over the compile's own exception
    import nas.sigstack

    def refused(new):
        raise error

    monkeypatch.setattr(nas.sigstack, "_sigaltstack", refused)
    ran = []
    with signal_stack_kept():
        ran.append(True)
    assert ran == [True]
    with pytest.raises(ValueError, match="the compile's own"):
        with signal_stack_kept():
            raise ValueError("the compile's own")


def test_a_stack_that_cannot_be_put_back_leaves_the_compiles_exception_as_it_was(monkeypatch):
    # read before the block, refused after it: the compile's exception is the one that reaches the caller
    import nas.sigstack

    calls = []
    real = nas.sigstack._sigaltstack

    def read_once(new):
        calls.append(new)
        if len(calls) > 1:
            raise OSError(38, "Function not implemented")
        return real(new)

    monkeypatch.setattr(nas.sigstack, "_sigaltstack", read_once)
    with pytest.raises(ValueError, match="the compile's own"):
        with signal_stack_kept():
            raise ValueError("the compile's own")
    assert len(calls) == 2
