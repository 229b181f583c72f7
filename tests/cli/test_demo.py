import subprocess
import sys

from rnnkit.cli.main import main


def test_demo_prints_both_seed_tables_and_learns(capsys):
    assert main(["demo", "--seconds", "1", "--lm-minutes", "0"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,592" in out and "Total params: 23,680" in out
    assert "held-out accuracy" in out


def test_module_entry_point_and_help():
    done = subprocess.run([sys.executable, "-m", "rnnkit", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "demo" in done.stdout


def test_unknown_command_exits_nonzero():
    done = subprocess.run([sys.executable, "-m", "rnnkit", "frobnicate"], capture_output=True, text=True)
    assert done.returncode != 0 and "invalid choice" in done.stderr
