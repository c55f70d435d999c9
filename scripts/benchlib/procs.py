"""The processes a run starts (Envoy, dpop-replay): spawned with their log in target/bench/,
recorded in target/bench/pids (scripts/bench.sh kills what is left), stopped; HTTP readiness."""

import http.client
import os
import socket
import subprocess
import time

from .settings import OUT, PIDFILE, ROOT


procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, logname):
    logf = open(os.path.join(OUT, logname), "w")
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    p._logf = logf
    procs.append(p)
    with open(PIDFILE, "a") as f:
        f.write(f"{p.pid}\n")
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    p._logf.close()
    if p in procs:
        procs.remove(p)
    with open(PIDFILE, "w") as f:
        f.writelines(f"{q.pid}\n" for q in procs)


def stop_all():
    for p in list(procs):
        stop(p)


def http_get(port, path, timeout=1):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def wait_http(p, port, path, what, logpath, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited ({p.returncode}):\n{tail(logpath)}")
        try:
            if http_get(port, path)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout}s:\n{tail(logpath)}")


def tail(path, n=3000):
    try:
        with open(path) as f:
            return f.read()[-n:]
    except OSError:
        return ""
