import subprocess
import sys


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "groundtruth.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout
