"""Services as processes for the Python integration tests: a tiny model and
the moe-* servers on 127.0.0.1."""

import os
import queue
import subprocess
import threading
import traceback

SHAPE = ["--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
         "--experts", "8", "--intermediate", "96", "--vocab", "500"]


def run_checks(checks, *args):
    """Calls each check(*args), printing the failures; (passed, failed)."""
    passed = failed = 0
    for check in checks:
        try:
            check(*args)
            passed += 1
        except Exception:
            failed += 1
            print(f"FAIL: {check.__name__}")
            traceback.print_exc()
    return passed, failed


def make_tiny_model(bin_dir, work):
    """A tiny random Mixtral FP8 checkpoint in `work`; returns its path."""
    model = os.path.join(work, "tiny-mixtral")
    subprocess.run([os.path.join(bin_dir, "moe-make-model"), "--out", model,
                    "--arch", "mixtral", "--dtype", "fp8"] + SHAPE,
                   check=True, stdout=subprocess.DEVNULL)
    return model


class Service:
    """A service process; `address` is read from its "listening on" line."""

    def __init__(self, name, args):
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        lines = queue.Queue()

        def read():  # all of stdout, so that the pipe never fills
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        prefix = f"{name} listening on "
        metrics_prefix = f"{name} metrics on "  # printed first, if at all
        self.metrics_address = None
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise RuntimeError(f"{name} did not print '{prefix}...' in 60 s")
            if line is None:
                raise RuntimeError(f"{name} exited with {self.process.wait()}")
            if line.startswith(metrics_prefix):
                self.metrics_address = line[len(metrics_prefix):].strip()
            if line.startswith(prefix):
                self.address = line[len(prefix):].strip()
                return

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


