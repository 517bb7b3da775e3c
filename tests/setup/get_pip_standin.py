# Offline stand-in for ansible-test's get-pip.py (ansible-test --venv downloads it from a host that
# may be unreachable unless ~/.ansible/test/cache/get_pip_<version>.py exists): ensurepip, then pip
# installs what was asked (get-pip's own --no-setuptools/--no-wheel options dropped).
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
