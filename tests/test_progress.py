"""The progress bar: its time-left arithmetic, its lines in a log and on a terminal, and that
it needs no Ray."""

from __future__ import annotations

import io
import subprocess
import sys

from popmix._util.progress import ProgressBar, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_time_left_is_the_average_pace_times_the_units_left():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar("matrix", 8, "HVPs", stream=out, log_every_s=5.0, clock=clock)
    assert bar.left() is None and out.getvalue() == ""  # nothing written before a unit
    clock.t += 6.0
    bar.update(2)  # 3 s a unit, 6 left
    assert bar.left() == 18.0
    assert out.getvalue().splitlines() == [
        "  matrix [######..................] 2/8 HVPs  0:06 elapsed, about 0:18 left"
    ]
    clock.t += 1.0
    bar()  # within log_every_s of the last line: not written
    assert len(out.getvalue().splitlines()) == 1
    clock.t += 65.0
    bar.close()
    assert out.getvalue().splitlines()[-1] == "  matrix: 3/8 HVPs in 1:12"


def test_terminal_redraws_in_place_and_a_stopped_bar_says_so():
    clock, out = Clock(), Terminal()
    try:
        with ProgressBar("training to step 4", 4, "steps", stream=out, clock=clock) as bar:
            for _ in range(2):
                clock.t += 1.0
                bar()
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    text = out.getvalue()
    assert text.startswith("\r  training to step 4 [") and text.count("\r") == 4
    assert text.endswith("training to step 4: 2/4 steps in 0:02, stopped\x1b[K\n")


def test_durations():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600 * 2 + 5)] == [
        "0:00",
        "1:00",
        "1:01",
        "2:00:05",
    ]


def test_the_bar_imports_without_ray():
    code = "import sys, popmix._util.progress; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
