"""Ctrl-C and SIGTERM end a Ray command the same way: the flag is set once, the note names
what happened, and the CLI exits 128 + the signal (the real search: tests/tune/test_resume.py)."""

from __future__ import annotations

import os
import signal

from popmix.cli import _interrupting_signal
from popmix.tune.callbacks import Interrupted, catch_sigint


def test_sigterm_sets_the_flag_like_ctrl_c_and_the_exit_code_is_143(capsys):
    with catch_sigint("popmix search") as flag:
        assert signal.getsignal(signal.SIGTERM) is flag
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.is_set()
        assert "popmix search: terminated; stopping all trials" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is not flag  # the handler before is back
    assert 128 + _interrupting_signal() == 143


def test_ctrl_c_exits_130(capsys):
    with catch_sigint("popmix confirm") as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.is_set() and Interrupted.last_signal == signal.SIGINT
    assert "popmix confirm: interrupted;" in capsys.readouterr().err
    assert 128 + _interrupting_signal() == 130
