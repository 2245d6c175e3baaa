"""What the Python tests share: checks that count instead of stopping at the first failure, the lsa
binary, required test data (missing data fails loudly), a scratch folder, and the first lines of the
held-out text. Run from the repository root (ctest's WORKING_DIRECTORY)."""
import os
import shutil
import subprocess
import sys
import tempfile

DATA = "../shared/data/tinystories-sampled-val.txt"
LLAMA12 = "../shared/models/tinystories-llama-12L"


class Checks:
    def __init__(self, name):
        self.name, self.checks, self.failures = name, 0, 0

    def __call__(self, cond, msg):
        self.checks += 1
        if not cond:
            self.failures += 1
            print("FAIL:", msg, file=sys.stderr)
        return cond

    def finish(self):
        print(f"{self.name}: {self.checks} checks, {self.failures} failed")
        sys.exit(1 if self.failures else 0)


def require(*paths):
    for p in paths:
        if not os.path.exists(p):
            sys.exit(f"FAIL: required test data {p} is missing (../shared must sit beside the checkout)")


def lsa(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def scratch(name):
    """A temporary folder removed at exit (kept when LSA_KEEP_TMP is set, for a look after a failure)."""
    tmp = tempfile.mkdtemp(prefix=f"lsa-{name}-")
    if not os.environ.get("LSA_KEEP_TMP"):
        import atexit
        atexit.register(shutil.rmtree, tmp, True)
    return tmp


def first_lines(n, path, src=DATA):
    with open(src, encoding="utf-8") as f, open(path, "w", encoding="utf-8") as g:
        for _ in range(n):
            g.write(f.readline())
    return path
