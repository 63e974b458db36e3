"""The ``streamrec`` command line routes every command to an importable ``main``."""
from __future__ import annotations

import inspect
import subprocess
import sys

from harness.cli import COMMANDS, main


def test_every_command_loads_its_main():
    for name, (load, _) in COMMANDS.items():
        command_main = load()
        assert callable(command_main) and command_main.__name__ == "main", name
        assert list(inspect.signature(command_main).parameters) == ["argv"], name


def test_usage_lists_every_command_and_an_unknown_one_is_refused(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_loading_a_command_does_not_load_torch():
    # Only the learner trains: a command that does not run it must not wait for torch to load.
    code = ("import sys; from harness.cli import COMMANDS\n"
            "for name in ('status', 'serve', 'streams', 'learner', 'chaos', 'bench'): COMMANDS[name][0]()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
