#!/usr/bin/env python3
"""Tenant isolation benchmark (not a test): a good site's latency, quiet
and while a hostile site on the same htgate is hammered.

    python3 scripts/isolation_bench.py --binary ./target/release/htgate

Starts htgate in config mode with two sites on loopback: `good` (a static
file) and `evil` (an endless [N] loop, a [QSA,N] query growth, a
25-star <Files> wildcard, 20,000 unanchored rules).  Measures the good
site's p50/p99 over N sequential requests with no other load, then again
while 32 processes hammer the evil site, and prints both with the ratio
(target: p99 under attack <= 3x quiet).  Bounded: about 30 s.

The server is pinned to CPU 0 and the clients to the others by default:
on a host the visitors are other machines, and on a two-core box a load
generator that shares the server's cores measures its own scheduling
(`--server-cpu ''` shares them anyway; `--client-fifo` then keeps the
measuring client from waiting behind the attackers).
"""
import argparse, multiprocessing, os, shutil, signal, socket, subprocess, sys, tempfile, time

def get(port, host, path, timeout=10.0):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split(b" ", 2)[1]) if data else 0
    return status, time.perf_counter() - t

def attack(n, port, paths, stop, results, niceness):
    # On a real host the attackers are other machines.  Here they share
    # the CPUs the server does not have (see --server-cpu) with the
    # measuring client; --attacker-nice lets them yield to it.
    if niceness >= 20:
        # SCHED_IDLE: below every nice level
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.nice(niceness)
    counts, i = {}, n
    while not stop.is_set():
        try:
            st, _ = get(port, "evil.test", paths[i % len(paths)], timeout=30)
        except OSError:
            st = 0
        counts[st] = counts.get(st, 0) + 1
        i += 1
    results.put(counts)

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="./target/release/htgate")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--attackers", type=int, default=32)
    ap.add_argument("--limits", default="", help="extra [limits] lines, e.g. 'engine_max_concurrent = 1'")
    ap.add_argument("--attacker-nice", type=int, default=0,
                    help="niceness of the attacking processes (0: compete with the measuring client; 20: SCHED_IDLE)")
    ap.add_argument("--attacks", default="loop,qsa,glob,rules",
                    help="which attacks to run (comma-separated)")
    ap.add_argument("--client-fifo", action="store_true",
                    help="run the measuring client at SCHED_FIFO (root)")
    ap.add_argument("--server-cpu", default="0" if (os.cpu_count() or 1) >= 2 else "",
                    help="taskset CPU list for htgate (the clients get the others); "
                         "'' to share every CPU with the clients")
    a = ap.parse_args()
    d = tempfile.mkdtemp()
    try:
        os.makedirs(f"{d}/good"); os.makedirs(f"{d}/evil")
        open(f"{d}/good/index.html", "w").write("good\n")
        for sub, text in {
            "loop": "RewriteEngine On\nRewriteRule ^ - [N=4000000000]\n",
            "qsa": "RewriteEngine On\nRewriteRule ^(.*)$ $1?g=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa [QSA,N=32000]\n",
            "glob": "<Files \"" + "*a" * 25 + "*b\">\nRequire all denied\n</Files>\n",
            "rules": "RewriteEngine On\n" + "".join(f"RewriteRule .*x{i}y /n{i}\n" for i in range(19990)),
        }.items():
            os.makedirs(f"{d}/evil/{sub}")
            open(f"{d}/evil/{sub}/.htaccess", "w").write(text)
        port = free_port()
        limits = "[limits]\n" + a.limits.replace(";", "\n") + "\n" if a.limits else ""
        open(f"{d}/htgate.toml", "w").write(limits + f"""
[[listen]]
address = "127.0.0.1:{port}"
[[site]]
name = "good"
domains = ["good.test"]
root = "good"
[[site]]
name = "evil"
domains = ["evil.test"]
root = "evil"
""")
        pin = ["taskset", "-c", a.server_cpu] if a.server_cpu else []
        if a.server_cpu:
            others = [c for c in range(os.cpu_count() or 1) if str(c) not in a.server_cpu.split(",")]
            if others:
                os.sched_setaffinity(0, others)
        proc = subprocess.Popen(pin + [a.binary, "serve", "--config", f"{d}/htgate.toml"],
                                stdout=subprocess.DEVNULL, stderr=open(f"{d}/err.log", "w"))
        for _ in range(100):
            try:
                get(port, "good.test", "/index.html"); break
            except OSError:
                time.sleep(0.05)
        def measure():
            lat, bad = [], 0
            for _ in range(a.requests):
                st, t = get(port, "good.test", "/index.html")
                lat.append(t); bad += st != 200
            return lat, bad
        if a.client_fifo:
            # The measuring client stands in for a visitor on another
            # machine: it must not wait for a CPU behind the attackers.
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            except PermissionError:
                print("note: --client-fifo needs root; the client runs at normal priority")
        quiet, bad_q = measure()
        # The attackers are processes of their own: threads would share
        # the measuring client's interpreter lock, and the measurement
        # would be the lock's 5 ms switch interval, not the server.
        stop = multiprocessing.Event()
        results = multiprocessing.Queue()
        every = {"loop": "/loop/x", "qsa": "/qsa/x", "glob": "/glob/" + "a" * 200, "rules": "/rules/page"}
        paths = [every[k] for k in a.attacks.split(",")]
        procs = [multiprocessing.Process(target=attack, args=(n, port, paths, stop, results, a.attacker_nice))
                 for n in range(a.attackers)]
        for p in procs: p.start()
        time.sleep(1)
        t0 = time.perf_counter()
        loud, bad_l = measure()
        elapsed = time.perf_counter() - t0
        stop.set()
        counts = {}
        for _ in procs:
            for st, n in results.get().items():
                counts[st] = counts.get(st, 0) + n
        for p in procs: p.join()
        proc.send_signal(signal.SIGTERM); proc.wait(timeout=20)
        q50, q99 = pct(quiet, .5) * 1e3, pct(quiet, .99) * 1e3
        l50, l99 = pct(loud, .5) * 1e3, pct(loud, .99) * 1e3
        print(f"good site quiet:        p50 {q50:.2f} ms  p99 {q99:.2f} ms  ({bad_q} non-200 of {a.requests})")
        print(f"good site under attack: p50 {l50:.2f} ms  p99 {l99:.2f} ms  ({bad_l} non-200 of {a.requests})")
        print(f"p99 ratio: {l99 / q99:.2f}x (target <= 3x); hostile answers by status: {dict(sorted(counts.items()))}")
        print(f"hostile load: {sum(counts.values()) / (elapsed + 1):.0f} requests/s over {elapsed + 1:.1f} s")
    finally:
        shutil.rmtree(d, ignore_errors=True)

if __name__ == "__main__":
    sys.exit(main())
