"""nas.telemetry: the toolkit's OpenVINO and NNCF calls send OpenVINO's usage statistics only where the user opted in
through OpenVINO's consent file, and leave the library sending for the caller as before."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import relu_onnx

from nas.telemetry import openvino_telemetry_off, openvino_telemetry_opted_in

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("openvino_telemetry")


def _consent(home: Path, value: str | None) -> None:
    """OpenVINO's consent file under `home` as `opt_in_out` writes it ("1" in, "0" out); None: no file."""
    if value is not None:
        (home / "intel").mkdir(exist_ok=True)
        (home / "intel" / "openvino_telemetry").write_text(value)


class _Backend:
    """A telemetry backend that records what it is given instead of posting it."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        self.sent.append(message)


@pytest.mark.parametrize(("value", "opted_in"), [(None, False), ("0", False), ("1", True)])
def test_only_a_consent_file_saying_1_is_an_opt_in(tmp_path, monkeypatch, value, opted_in):
    monkeypatch.setenv("HOME", str(tmp_path))  # where OpenVINO looks for ~/intel/openvino_telemetry
    _consent(tmp_path, value)
    assert openvino_telemetry_opted_in() is opted_in


def test_a_block_drops_the_messages_sent_in_it_and_the_sender_sends_again_after_it(tmp_path, monkeypatch):
    from openvino_telemetry.utils.sender import TelemetrySender

    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file: no opt-in
    send = TelemetrySender.send
    backend, sender = _Backend(), TelemetrySender()
    entered, leave = threading.Event(), threading.Event()

    def other_call() -> None:  # a toolkit call in another thread, still running when this thread's ends
        with openvino_telemetry_off():
            entered.set()
            leave.wait(10)

    other = threading.Thread(target=other_call)
    with openvino_telemetry_off():
        with openvino_telemetry_off():  # a conversion inside a run
            sender.send(backend, "inner")
        other.start()
        entered.wait(10)
        sender.send(backend, "outer")
    sender.send(backend, "while the other thread's block runs")
    leave.set()
    other.join()
    assert not sender.executor._threads, "a dropped message started a thread of the sender's pool"
    assert TelemetrySender.send is send
    sender.send(backend, "after")
    sender.executor.shutdown(wait=True)
    assert backend.sent == ["after"]


# A process converting through the toolkit as a user's would (no CI variable, the consent file under a temporary HOME),
# with OpenVINO's backend recording its messages instead of posting them (from a forked process) to Google Analytics.
_CONVERSION = """
import sys
from pathlib import Path
from openvino_telemetry.backend.backend_ga4 import GA4Backend

sent = []
GA4Backend.send = lambda self, message: sent.append(message)

def sent_so_far():
    import openvino_telemetry as tm
    sender = tm.Telemetry().sender
    sender.executor.shutdown(wait=True)  # the messages queued so far are handed to the backend
    tm.Telemetry().sender = type(sender)()
    return len(sent)

onnx = Path(sys.argv[1])
from compress.export import export_openvino
export_openvino(onnx, onnx.with_suffix(".xml"), in_chans=1, img_size=4)  # imports openvino, converts
print("toolkit:", sent_so_far())
import openvino as ov
ov.convert_model(str(onnx), input=[(-1, 1, 4, 4)])  # the caller's own conversion, after the toolkit's
print("caller:", sent_so_far())
"""


def _convert(home: Path) -> dict[str, int]:
    onnx = relu_onnx(home / "relu.onnx", shape=("N", 1, 4, 4))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # OpenVINO's CI switches
    env["HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", _CONVERSION, str(onnx)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {name: int(count) for name, count in (line.split(": ") for line in out.stdout.splitlines())}


def test_a_conversion_through_the_toolkit_sends_no_telemetry_where_the_user_did_not_opt_in(tmp_path):
    # no consent file, where OpenVINO itself sends (its converter has no opt-in dialog): a forked sender once deadlocked
    # in the resolver on a machine without internet and outlived the run
    sent = _convert(tmp_path)
    assert sent["toolkit"] == 0
    assert sent["caller"] > 0, "the caller's own conversion after the toolkit's no longer sends as OpenVINO would"
    assert not (tmp_path / "intel" / "openvino_telemetry").exists(), "the toolkit wrote a consent file"


def test_a_conversion_through_the_toolkit_sends_telemetry_where_the_user_opted_in(tmp_path):
    _consent(tmp_path, "1")
    sent = _convert(tmp_path)
    assert sent["toolkit"] > 0 and sent["caller"] > sent["toolkit"]
    assert (tmp_path / "intel" / "openvino_telemetry").read_text() == "1"
