#!/usr/bin/env python3
"""Soak and fault test of htgate (issue 7), loopback only, under 5 minutes.

Starts the htgate binary in quick mode on a small demo tree and, while
normal clients keep asking for pages (plain and TLS), holds 1,000 slow or
stalled connections open (slowloris heads, slow bodies, stalled TLS
handshakes, idle keep-alives, silent sockets), lets one address try to
take more than its share, and sends every request of the hostile corpus
(fixtures/hostile/*.req).  Then it does it all again, shorter, to see
memory settle rather than grow.  Last, in config mode with a site on a
real PHP-FPM pool (pm.max_children = 4, started here with a temp config),
300 clients from 5 addresses trickle POST bodies to index.php (one byte
every 3 s, Content-Length 100000) for about 34 s while a normal client
asks for PHP pages.

Fails (exit 1) when:
- a normal client's success rate drops under 99 % or its p99 latency
  exceeds 3 s;
- a hostile request gets a 5xx, hangs past its deadline, gets a 2xx where
  that would be a leak (traversal, `.ht*`, denied files), gets anything but
  a 4xx or a closed connection where it must be refused, gets a second
  answer where a request could have been smuggled in, is not followed by
  the end of the connection where HTTP/1 requires it (Content-Length with
  Transfer-Encoding), or any answer carries a secret of the demo tree;
- a slow connection outlives the server's timeout for it by more than the
  slack;
- one client address gets more than its share of connections;
- during the slow-body-to-PHP attack, a normal client's PHP request fails
  (100 % must succeed) or its p99 exceeds 3 s, a trickler is not answered
  408 within the body timeout (20 s) and the slack, or php-fpm is missing
  under CI=true;
- the server dies, does not exit 0 on SIGTERM, or its memory does not
  settle (RSS after the second round well above the first, or above the
  start by a generous bound);
- during the HTTP/2 zero-window attack (200 TLS connections from 4
  addresses, SETTINGS_INITIAL_WINDOW_SIZE=0, 100 GETs of a 16 MiB file
  each, reconnecting when cut off): RSS goes over 300 MiB, an `accept`
  fails (the log says "accept failed" or "Too many open files"), a normal
  client's request fails, or RSS is not back within 50 MiB of its
  pre-attack value afterwards.

Needs only python3 and the binary:
    python3 scripts/soak.py --binary target/release/htgate
"""

import argparse
import asyncio
import os
import re
import resource
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
# Linux TCP states (tcp_states.h), read from TCP_INFO.
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
# The server's limits (crates/server/src/limits.rs), with slack for the 5 s check
# interval and a loaded machine.
HEADER_TIMEOUT = 30.0
BODY_TIMEOUT = 60.0
IDLE_TIMEOUT = 60.0
# A response the client takes nothing of (crates/server/src/limits.rs SEND_TIMEOUT).
SEND_TIMEOUT = 30.0
TLS_HANDSHAKE_TIMEOUT = 10.0
SLACK = 12.0
PER_IP_CAP = 256

# Slow connections by kind, spread over source addresses so that no one
# address passes the per-address cap (the hog below does that on purpose).
SLOW_KINDS = {
    "slowloris-head": 300,
    "slow-body": 100,
    "slow-reader": 100,
    "stalled-tls": 200,
    "idle-keepalive": 200,
    "silent": 100,
}
SLOW_SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
HOG_SOURCE = "127.0.0.10"
HOSTILE_SOURCE = "127.0.0.11"
HOG_CONNECTIONS = 300

SECRET_MARKERS = [b"HOSTILE-SECRET", b"root:x:0:0", b"SECRET-HTPASSWD"]

# The normal clients' requests and the status each must get.
NORMAL_REQUESTS = [
    ("GET", "/", {}, 200),
    ("GET", "/index.html", {}, 200),
    ("GET", "/big.bin", {"Range": "bytes=0-99"}, 206),
    ("GET", "/blog/hello-world", {}, 200),
    ("GET", "/missing.html", {}, 404),
    ("GET", "/private/secret.txt", {}, 403),
    ("HEAD", "/big.bin", {}, 200),
]


def now():
    return time.monotonic()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------

def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(need, soft)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            # Root may raise the hard limit too.
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            sys.exit(f"soak: need {need} file descriptors, the hard limit is {hard} "
                     f"(raise it: ulimit -Hn {need})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def demo_tree(base):
    root = os.path.join(base, "site")
    os.makedirs(os.path.join(root, "private"))
    with open(os.path.join(base, "secret.txt"), "w") as f:
        f.write("HOSTILE-SECRET-OUTSIDE-THE-ROOT\n")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<html><body>soak index</body></html>\n")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(os.path.join(root, "huge.bin"), "wb") as f:
        f.write(os.urandom(16 << 20))
    with open(os.path.join(root, ".htpasswd"), "w") as f:
        f.write("admin:SECRET-HTPASSWD-HOSTILE-SECRET\n")
    with open(os.path.join(root, "private", "secret.txt"), "w") as f:
        f.write("HOSTILE-SECRET-DENIED-FILE\n")
    with open(os.path.join(root, "private", ".htaccess"), "w") as f:
        f.write("# HOSTILE-SECRET-PRIVATE-HTACCESS\nRequire all denied\n")
    with open(os.path.join(root, ".htaccess"), "w") as f:
        f.write(
            "# HOSTILE-SECRET-HTACCESS\n"
            "RewriteEngine On\n"
            "RewriteRule ^blog/(.*)$ index.html [L]\n"
            "RewriteCond %{QUERY_STRING} (.+)\n"
            "RewriteRule ^q$ /index.html?%1 [R=302,L]\n"
            "Header always set X-Soak \"%{REQUEST_URI}e\"\n"
        )
    return root


class Server:
    """The htgate child: its addresses (from its stderr), RSS, log."""

    def __init__(self, binary, root, logpath):
        self.logpath = logpath
        self.logfile = open(logpath, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--root", root, "--http", f"{HOST}:0", "--https", f"{HOST}:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.http = None
        self.https = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.logfile.write(line)
                self.logfile.flush()
                m = re.search(rb"listening on http://(\S+) and https://(\S+)", line)
                if m:
                    self.http = parse_addr(m.group(1).decode())
                    self.https = parse_addr(m.group(2).decode())
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(15):
            self.kill()
            sys.exit(f"soak: htgate did not start; log: {logpath}")

    def rss_kb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=30):
        try:
            with open(self.logpath, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


# --------------------------------------------------------------------------
# HTTP/1 response parsing (enough for status codes and framing)
# --------------------------------------------------------------------------

def parse_responses(data, head_requests=0):
    """Statuses of the HTTP/1 responses at the start of `data`, in order
    (1xx interim answers skipped); stops where framing cannot be followed."""
    statuses = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = data[pos:end].decode("latin-1")
        lines = head.split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            break
        status = int(m.group(1))
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        pos = end + 4
        if 100 <= status < 200:
            continue
        statuses.append(status)
        no_body = status in (204, 304) or head_requests > 0
        if head_requests > 0:
            head_requests -= 1
        if no_body:
            continue
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                le = data.find(b"\r\n", pos)
                if le < 0:
                    return statuses
                try:
                    size = int(data[pos:le].split(b";")[0], 16)
                except ValueError:
                    return statuses
                pos = le + 2 + size + 2
                if size == 0:
                    break
        elif "content-length" in headers:
            try:
                pos += int(headers["content-length"])
            except ValueError:
                break
        else:
            break
    return statuses


# --------------------------------------------------------------------------
# Normal clients
# --------------------------------------------------------------------------

class NormalStats:
    def __init__(self):
        self.ok = 0
        self.bad = 0
        self.latencies = []
        self.errors = {}

    def error(self, what):
        self.bad += 1
        self.errors[what] = self.errors.get(what, 0) + 1


async def read_response(reader, head):
    """One response: (status, body) or raises."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    while True:
        m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
        if not m:
            raise ValueError(f"bad status line {line[:40]!r}")
        status = int(m.group(1))
        headers = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if 100 <= status < 200:
            line = await reader.readline()
            continue
        break
    body = b""
    if not head and status not in (204, 304):
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                body += chunk[:-2]
                if size == 0:
                    break
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
    return status, body, headers


async def normal_worker(addr, tls_ctx, stop_at, stats, secrets_seen):
    i = 0
    while now() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*addr, ssl=tls_ctx,
                                        server_hostname="localhost" if tls_ctx else None,
                                        local_addr=(HOST, 0)), 5)
        except Exception as e:
            stats.error(f"connect: {type(e).__name__}")
            await asyncio.sleep(0.2)
            continue
        try:
            for _ in range(20):
                if now() >= stop_at:
                    break
                method, path, extra, want = NORMAL_REQUESTS[i % len(NORMAL_REQUESTS)]
                i += 1
                req = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                req += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
                t0 = now()
                writer.write(req.encode())
                await writer.drain()
                status, body, _ = await asyncio.wait_for(read_response(reader, method == "HEAD"), 5)
                stats.latencies.append(now() - t0)
                if any(s in body for s in SECRET_MARKERS):
                    secrets_seen.append(f"normal {path}")
                if status == want:
                    stats.ok += 1
                else:
                    stats.error(f"{path}: {status} (want {want})")
                await asyncio.sleep(0.01)
        except asyncio.TimeoutError:
            stats.error("timeout")
        except Exception as e:
            stats.error(f"{type(e).__name__}")
        finally:
            writer.close()


# --------------------------------------------------------------------------
# HTTP/2 zero-window attack (raw frames over TLS with ALPN h2, stdlib only)
# --------------------------------------------------------------------------

H2_ATTACK_SOURCES = [f"127.0.0.{i}" for i in range(20, 24)]
H2_ATTACK_CONNECTIONS = 200
H2_ATTACK_STREAMS = 100
H2_ATTACK_SECONDS = 45.0
H2_ATTACK_SETTLE = 13.0
H2_RSS_PEAK_MB = 300.0
H2_RSS_RETURN_MB = 50.0
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind, flags, stream, payload):
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + (stream & 0x7FFFFFFF).to_bytes(4, "big") + payload)


def hpack_literal(index, value):
    """Literal header field without indexing, indexed name (RFC 7541
    6.2.2), no Huffman; values here are short (one-byte length)."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index, len(v)]) + v


def h2_get_block(path):
    # :method GET (2), :scheme https (7) indexed; :authority (1) and
    # :path (4) as literals.
    return b"\x82\x87" + hpack_literal(1, "localhost") + hpack_literal(4, path)


def h2_attack_burst():
    """Preface, SETTINGS (INITIAL_WINDOW_SIZE=0, ENABLE_PUSH=0), then
    H2_ATTACK_STREAMS GETs of the big file; no WINDOW_UPDATE ever."""
    settings = b"\x00\x04" + (0).to_bytes(4, "big") + b"\x00\x02" + (0).to_bytes(4, "big")
    out = [H2_PREFACE, h2_frame(0x4, 0, 0, settings)]
    block = h2_get_block("/huge.bin")
    for i in range(H2_ATTACK_STREAMS):
        out.append(h2_frame(0x1, 0x5, 1 + 2 * i, block))  # END_STREAM|END_HEADERS
    return b"".join(out)


class H2AttackStats:
    def __init__(self):
        self.connections = 0
        self.connect_failed = 0
        self.not_h2 = 0
        self.ended_by_server = 0
        self.goaway = 0
        self.errors = {}


async def h2_attacker(https, src, stop_at, stats):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    burst = h2_attack_burst()
    settings_ack = h2_frame(0x4, 0x1, 0, b"")
    while now() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*https, ssl=ctx, server_hostname="localhost",
                                        local_addr=(src, 0)), 10)
        except Exception:
            stats.connect_failed += 1
            await asyncio.sleep(0.5)
            continue
        try:
            if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
                stats.not_h2 += 1
                return
            stats.connections += 1
            writer.write(burst + settings_ack)
            await writer.drain()
            # Read (and drop) what comes: HEADERS, SETTINGS, RST_STREAM,
            # GOAWAY; never a WINDOW_UPDATE back.
            while now() < stop_at:
                try:
                    data = await asyncio.wait_for(reader.read(65536), max(0.05, stop_at - now()))
                except asyncio.TimeoutError:
                    break
                if not data:
                    stats.ended_by_server += 1
                    break
                if b"\x07\x00\x00\x00\x00\x00" in data:
                    stats.goaway += 1
        except (ConnectionError, OSError, ssl.SSLError):
            stats.ended_by_server += 1
        except Exception as e:
            stats.errors[type(e).__name__] = stats.errors.get(type(e).__name__, 0) + 1
        finally:
            writer.close()
        await asyncio.sleep(0.2)


def count_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def log_count(server, needles):
    try:
        with open(server.logpath, "rb") as f:
            text = f.read()
    except OSError:
        return 0
    return sum(text.count(n) for n in needles)


async def h2_zero_window_attack(server, tls_ctx):
    """The attack, with normal clients running alongside; returns the
    figures for report_h2_attack."""
    accept_errors = [b"accept failed", b"Too many open files"]
    errors_before = log_count(server, accept_errors)
    rss_before = server.rss_kb()
    stop_at = now() + H2_ATTACK_SECONDS
    stats = H2AttackStats()
    normal = NormalStats()
    secrets_seen = []
    samples = {"rss": [], "fds": []}

    async def sampler():
        while now() < stop_at + 1:
            r = server.rss_kb()
            if r:
                samples["rss"].append(r)
            n = count_fds(server.proc.pid)
            if n:
                samples["fds"].append(n)
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(sampler())]
    for i in range(H2_ATTACK_CONNECTIONS):
        src = H2_ATTACK_SOURCES[i % len(H2_ATTACK_SOURCES)]
        tasks.append(asyncio.create_task(h2_attacker(server.https, src, stop_at, stats)))
    await asyncio.sleep(2)
    for _ in range(3):
        tasks.append(asyncio.create_task(normal_worker(server.http, None, stop_at, normal, secrets_seen)))
    tasks.append(asyncio.create_task(normal_worker(server.https, tls_ctx, stop_at, normal, secrets_seen)))
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(H2_ATTACK_SETTLE)
    return {
        "stats": stats,
        "normal": normal,
        "secrets": secrets_seen,
        "rss_before": rss_before,
        "rss_peak": max(samples["rss"]) if samples["rss"] else None,
        "rss_after": server.rss_kb(),
        "fds_peak": max(samples["fds"]) if samples["fds"] else None,
        "accept_errors": log_count(server, accept_errors) - errors_before,
    }


def report_h2_attack(r, failures):
    label = "HTTP/2 zero-window attack"
    s = r["stats"]
    st = r["normal"]
    total = st.ok + st.bad
    p99 = pct(st.latencies, 99) * 1000
    mb = lambda kb: (kb or 0) / 1024
    print(f"\n== {label} ({H2_ATTACK_CONNECTIONS} connections x {H2_ATTACK_STREAMS} streams, "
          f"{H2_ATTACK_SECONDS:.0f} s, from {len(H2_ATTACK_SOURCES)} addresses)")
    print(f"  attack connections   {s.connections} opened, {s.ended_by_server} ended by the server, "
          f"{s.connect_failed} connects failed {s.errors or ''}")
    print(f"  RSS                  before {mb(r['rss_before']):.1f} MiB, peak {mb(r['rss_peak']):.1f} MiB, "
          f"after {mb(r['rss_after']):.1f} MiB")
    print(f"  open descriptors     peak {r['fds_peak']}")
    print(f"  accept errors        {r['accept_errors']}")
    print(f"  normal client        {st.ok}/{total} ok, p99 {p99:.1f} ms {st.errors or ''}")
    if s.not_h2:
        failures.append(f"{label}: the server did not negotiate h2")
    if s.connections < H2_ATTACK_CONNECTIONS:
        failures.append(f"{label}: only {s.connections} attack connections opened")
    if r["rss_peak"] and mb(r["rss_peak"]) > H2_RSS_PEAK_MB:
        failures.append(f"{label}: RSS peaked at {mb(r['rss_peak']):.0f} MiB (bound {H2_RSS_PEAK_MB:.0f})")
    if r["accept_errors"]:
        failures.append(f"{label}: {r['accept_errors']} accept errors in the log")
    if total == 0 or st.bad:
        failures.append(f"{label}: normal client {st.ok}/{total} ok ({st.errors})")
    if r["rss_before"] and r["rss_after"] and r["rss_after"] > r["rss_before"] + H2_RSS_RETURN_MB * 1024:
        failures.append(f"{label}: RSS {mb(r['rss_after']):.0f} MiB after the attack, "
                        f"{mb(r['rss_before']):.0f} MiB before")
    for sname in r["secrets"]:
        failures.append(f"{label}: secret seen by {sname}")


# --------------------------------------------------------------------------
# Slow and stalled connections
# --------------------------------------------------------------------------

class SlowStats:
    def __init__(self):
        self.opened = {k: 0 for k in SLOW_KINDS}
        self.cut = {k: 0 for k in SLOW_KINDS}
        self.answered = {k: 0 for k in SLOW_KINDS}
        self.connect_failed = {k: 0 for k in SLOW_KINDS}
        self.longest_cut = {k: 0.0 for k in SLOW_KINDS}
        self.overstayed = {k: 0 for k in SLOW_KINDS}
        self.open_now = 0
        self.peak_open = 0


LIMIT = {
    "slowloris-head": HEADER_TIMEOUT,
    "slow-body": BODY_TIMEOUT,
    "slow-reader": SEND_TIMEOUT,
    "stalled-tls": TLS_HANDSHAKE_TIMEOUT,
    "idle-keepalive": HEADER_TIMEOUT,
    "silent": HEADER_TIMEOUT,
}


async def wait_closed(reader, seconds):
    """True when the server closed within `seconds` (reading what comes);
    second value: whether any bytes came."""
    got = False
    end = now() + seconds
    while now() < end:
        try:
            data = await asyncio.wait_for(reader.read(65536), max(0.01, end - now()))
        except asyncio.TimeoutError:
            return False, got
        except (ConnectionError, OSError):
            return True, got
        if not data:
            return True, got
        got = True
    return False, got


async def slow_reader_once(http, src, stop_at, stats):
    """Asks for 16 MiB and never reads a byte: the server's writes stall
    once the socket buffers are full (a raw socket: asyncio's streams
    would read ahead)."""
    import socket
    kind = "slow-reader"
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        sock.bind((src, 0))
        await asyncio.wait_for(loop.sock_connect(sock, http), 10)
        await loop.sock_sendall(sock, b"GET /huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    except Exception:
        stats.connect_failed[kind] += 1
        sock.close()
        await asyncio.sleep(1)
        return
    stats.opened[kind] += 1
    stats.open_now += 1
    stats.peak_open = max(stats.peak_open, stats.open_now)
    t0 = now()
    closed = False
    while now() < stop_at and not closed:
        await asyncio.sleep(1)
        # Unread data hides the end of the stream from recv(); the TCP
        # state says whether the server closed (CLOSE_WAIT) or reset it.
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
            closed = info[0] in (TCP_CLOSE_WAIT, TCP_CLOSE)
        except OSError:
            closed = True
    life = now() - t0
    stats.open_now -= 1
    stats.answered[kind] += 1
    if closed:
        stats.cut[kind] += 1
        stats.longest_cut[kind] = max(stats.longest_cut[kind], life)
    if life > LIMIT[kind] + SLACK:
        stats.overstayed[kind] += 1
    sock.close()


async def slow_once(kind, http, https, src, stop_at, stats):
    if kind == "slow-reader":
        return await slow_reader_once(http, src, stop_at, stats)
    target = https if kind == "stalled-tls" else http
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*target, local_addr=(src, 0)), 10)
    except Exception:
        stats.connect_failed[kind] += 1
        await asyncio.sleep(1)
        return
    stats.opened[kind] += 1
    stats.open_now += 1
    stats.peak_open = max(stats.peak_open, stats.open_now)
    t0 = now()
    closed = False
    answered = False
    try:
        if kind == "slowloris-head":
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            while now() < stop_at and not closed:
                writer.write(b"X-Slow: a\r\n")
                await writer.drain()
                closed, got = await wait_closed(reader, 3)
                answered |= got
        elif kind == "slow-body":
            writer.write(b"POST /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
            while now() < stop_at and not closed:
                writer.write(b"0123456789")
                await writer.drain()
                closed, got = await wait_closed(reader, 3)
                answered |= got
        elif kind == "slow-reader":
            raise AssertionError("slow-reader runs in slow_reader_once")
        elif kind == "stalled-tls":
            if src.endswith((".2", ".4", ".6", ".8")):
                # The start of a ClientHello that announces 512 bytes.
                writer.write(bytes.fromhex("160301020001") + os.urandom(40))
                await writer.drain()
            closed, got = await wait_closed(reader, max(0.0, stop_at - now()))
        elif kind == "idle-keepalive":
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            status, _, _ = await asyncio.wait_for(read_response(reader, False), 10)
            answered = status == 200
            closed, _ = await wait_closed(reader, max(0.0, stop_at - now()))
        elif kind == "silent":
            closed, got = await wait_closed(reader, max(0.0, stop_at - now()))
            answered |= got
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        closed = True
    except asyncio.TimeoutError:
        pass
    finally:
        life = now() - t0
        stats.open_now -= 1
        if answered:
            stats.answered[kind] += 1
        if closed:
            stats.cut[kind] += 1
            stats.longest_cut[kind] = max(stats.longest_cut[kind], life)
        # Whatever the client does, the server must end the connection
        # within its limit for this kind.
        if life > LIMIT[kind] + SLACK:
            stats.overstayed[kind] += 1
        writer.close()


async def slow_worker(kind, http, https, src, stop_at, stats, start_delay):
    await asyncio.sleep(start_delay)
    while now() < stop_at:
        await slow_once(kind, http, https, src, stop_at, stats)


async def hog(http, stop_at):
    """One address opens more than its share: the extra ones are closed at
    once, the rest stay open (and are cut by the server's timeouts)."""
    conns = []
    refused = 0
    for _ in range(HOG_CONNECTIONS):
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(*http, local_addr=(HOG_SOURCE, 0)), 5)
            conns.append((r, w))
        except Exception:
            refused += 1
    await asyncio.sleep(1.0)
    closed_fast = 0
    for r, _ in conns:
        closed, _ = await wait_closed(r, 0.01)
        if closed:
            closed_fast += 1
    # Hold the rest until the phase ends or the server cuts them.
    await asyncio.sleep(max(0.0, min(stop_at - now(), 5)))
    for _, w in conns:
        w.close()
    return len(conns) + refused, closed_fast + refused


# --------------------------------------------------------------------------
# The hostile corpus
# --------------------------------------------------------------------------

def load_corpus(directory):
    cases = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".req"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        meta = {}
        while data.startswith(b"#! "):
            line, _, data = data.partition(b"\n")
            k, _, v = line[3:].decode().partition(":")
            meta[k.strip()] = v.strip()
        cases.append((name, meta, data))
    return cases


class HostileResult:
    def __init__(self):
        self.by_outcome = {}
        self.failures = []
        self.count = 0


async def hostile_one(http, name, meta, raw, result, deadline=15.0):
    expect = meta.get("expect", "safe")
    shut = meta.get("shut", "yes") != "no"
    heads = raw.count(b"HEAD ") if raw.startswith(b"HEAD") or b"\r\nHEAD " in raw else 0
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(*http, local_addr=(HOSTILE_SOURCE, 0)), 5)
    except Exception as e:
        result.failures.append(f"{name}: cannot connect ({e})")
        return
    data = b""
    closed = False
    t0 = now()
    try:
        try:
            writer.write(raw)
            await asyncio.wait_for(writer.drain(), deadline)
            if shut and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        while now() - t0 < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), deadline - (now() - t0))
            except asyncio.TimeoutError:
                break
            except (ConnectionError, OSError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
    finally:
        writer.close()
    statuses = parse_responses(data, heads)
    result.count += 1
    kinds = sorted({f"{s // 100}xx" for s in statuses})
    outcome = "+".join(kinds) if kinds else ("closed" if closed else "no answer")
    key = f"{expect}: {outcome}"
    result.by_outcome[key] = result.by_outcome.get(key, 0) + 1
    why = meta.get("why", "")
    bad = None
    if not closed:
        bad = f"still open after {deadline:.0f} s"
    elif any(500 <= s for s in statuses):
        bad = f"5xx {statuses}"
    elif any(m in data for m in SECRET_MARKERS):
        bad = "a secret of the demo tree came out"
    elif expect == "reject" and any(not 400 <= s < 500 for s in statuses):
        bad = f"must be refused (4xx or closed), got {statuses}"
    elif expect == "no-2xx" and any(200 <= s < 300 for s in statuses):
        bad = f"must not succeed, got {statuses}"
    elif expect == "h2-close" and statuses:
        bad = f"HTTP/1 answer to HTTP/2 frames: {statuses}"
    elif expect in ("one-answer", "closed-after") and len(statuses) > 1:
        bad = f"more than one answer (a request was smuggled in): {statuses}"
    if bad:
        result.failures.append(f"{name} ({why}): {bad}")


async def hostile_all(http, cases, concurrency=16):
    result = HostileResult()
    sem = asyncio.Semaphore(concurrency)

    async def one(case):
        async with sem:
            await hostile_one(http, *case, result)

    await asyncio.gather(*(one(c) for c in cases))
    return result


# --------------------------------------------------------------------------
# One round: everything at once for `duration` seconds
# --------------------------------------------------------------------------

async def rss_sampler(server, stop_at, samples):
    while now() < stop_at:
        r = server.rss_kb()
        if r:
            samples.append(r)
        await asyncio.sleep(0.5)


async def round_(server, cases, duration, slow_scale, tls_ctx):
    stop_at = now() + duration
    normal = NormalStats()
    tls_normal = NormalStats()
    slow = SlowStats()
    secrets_seen = []
    rss = []
    tasks = [asyncio.create_task(rss_sampler(server, stop_at + 1, rss))]
    # Slow connections ramp up over the first 5 s.
    idx = 0
    for kind, count in SLOW_KINDS.items():
        for _ in range(int(count * slow_scale)):
            src = SLOW_SOURCES[idx % len(SLOW_SOURCES)]
            idx += 1
            tasks.append(asyncio.create_task(slow_worker(
                kind, server.http, server.https, src, stop_at, slow, (idx % 500) / 100)))
    for _ in range(12):
        tasks.append(asyncio.create_task(normal_worker(server.http, None, stop_at, normal, secrets_seen)))
    for _ in range(4):
        tasks.append(asyncio.create_task(normal_worker(server.https, tls_ctx, stop_at, tls_normal, secrets_seen)))
    await asyncio.sleep(6)
    hog_task = asyncio.create_task(hog(server.http, stop_at))
    hostile = await hostile_all(server.http, cases)
    hog_total, hog_refused = await hog_task
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "normal": normal,
        "tls_normal": tls_normal,
        "slow": slow,
        "hostile": hostile,
        "hog": (hog_total, hog_refused),
        "secrets": secrets_seen,
        "rss_peak": max(rss) if rss else None,
    }


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def report_round(label, r, failures):
    print(f"\n== {label}")
    rows = []
    for name, st in (("normal HTTP/1.1", r["normal"]), ("normal HTTPS", r["tls_normal"])):
        total = st.ok + st.bad
        rate = 100.0 * st.ok / total if total else 0.0
        p50 = pct(st.latencies, 50) * 1000
        p99 = pct(st.latencies, 99) * 1000
        rows.append((name, f"{st.ok}/{total} ok", f"{rate:.2f} %", f"p50 {p50:.1f} ms", f"p99 {p99:.1f} ms"))
        if total == 0 or rate < 99.0:
            failures.append(f"{label}: {name} success rate {rate:.2f} % ({st.errors})")
        if total and p99 > 3000:
            failures.append(f"{label}: {name} p99 latency {p99:.0f} ms")
    s = r["slow"]
    for k in SLOW_KINDS:
        rows.append((f"slow {k}", f"{s.opened[k]} opened",
                     f"{s.cut[k]} ended by server ({s.answered[k]} answered)",
                     f"longest {s.longest_cut[k]:.1f} s (limit {LIMIT[k]:.0f} s)",
                     f"{s.overstayed[k]} overstayed"))
        if s.overstayed[k]:
            failures.append(f"{label}: {s.overstayed[k]} {k} connections outlived the server's {LIMIT[k]:.0f} s limit")
        if s.connect_failed[k] > s.opened[k] // 10 + 5:
            failures.append(f"{label}: {s.connect_failed[k]} {k} connections could not connect")
    rows.append(("slow, open at once", f"peak {s.peak_open}", "", "", ""))
    hog_total, hog_refused = r["hog"]
    rows.append(("one address, 300 conns", f"{hog_refused} refused at once",
                 f"cap {PER_IP_CAP}", "", ""))
    if hog_refused < hog_total - PER_IP_CAP:
        failures.append(f"{label}: one address kept {hog_total - hog_refused} connections (cap {PER_IP_CAP})")
    h = r["hostile"]
    rows.append(("hostile requests", f"{h.count} sent", f"{len(h.failures)} failed", "", ""))
    for key in sorted(h.by_outcome):
        rows.append(("  " + key, str(h.by_outcome[key]), "", "", ""))
    for f in h.failures:
        failures.append(f"{label}: hostile {f}")
    for sname in r["secrets"]:
        failures.append(f"{label}: secret seen by {sname}")
    width = [max(len(str(row[i])) for row in rows) for i in range(5)]
    for row in rows:
        print("  " + "  ".join(str(c).ljust(width[i]) for i, c in enumerate(row)))


async def settle(seconds):
    await asyncio.sleep(seconds)


# --------------------------------------------------------------------------
# Slow bodies to PHP (issue 17): config mode, a real PHP-FPM pool with
# pm.max_children = 4, hundreds of clients trickling POST bodies to
# index.php while a normal client's PHP requests must all succeed.
# --------------------------------------------------------------------------

PHP_MAX_CHILDREN = 4
PHP_ATTACK_CONNECTIONS = 300
PHP_ATTACK_SOURCES = [f"127.0.0.{i}" for i in range(20, 25)]
PHP_ATTACK_BODY = 100000
PHP_ATTACK_EVERY = 3.0
# htgate's php_body_timeout_seconds default: a client below the minimum
# rate is answered 408 after it.
PHP_BODY_TIMEOUT = 20.0


def find_php_fpm():
    import shutil
    for name in ("php-fpm8.2", "php-fpm"):
        found = shutil.which(name)
        if found:
            return found
    try:
        cands = sorted(f for f in os.listdir("/usr/sbin") if f.startswith("php-fpm"))
    except OSError:
        cands = []
    for c in reversed(cands):
        path = os.path.join("/usr/sbin", c)
        if os.access(path, os.X_OK):
            return path
    return None


class PhpFpm:
    """A throw-away PHP-FPM master on a Unix socket in `base`."""

    def __init__(self, binary, base):
        self.dir = os.path.join(base, "php-fpm")
        os.makedirs(self.dir)
        self.socket = os.path.join(self.dir, "php-fpm.sock")
        conf = os.path.join(self.dir, "php-fpm.conf")
        user = "user = root\ngroup = root\n" if os.geteuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(
                "[global]\n"
                f"pid = {self.dir}/php-fpm.pid\n"
                f"error_log = {self.dir}/php-fpm.log\n"
                "daemonize = no\n\n"
                "[www]\n"
                f"{user}"
                f"listen = {self.socket}\n"
                "listen.mode = 0666\n"
                "pm = static\n"
                f"pm.max_children = {PHP_MAX_CHILDREN}\n"
                "clear_env = yes\n")
        args = [binary, "-F", "-y", conf]
        if os.geteuid() == 0:
            args.insert(2, "-R")
        self.out = open(os.path.join(self.dir, "master.out"), "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        deadline = now() + 15
        while now() < deadline:
            if os.path.exists(self.socket) and self.proc.poll() is None:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        sys.exit(f"soak: php-fpm did not start; see {self.dir}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ConfigServer:
    """htgate in config mode with one PHP site on `sock`."""

    def __init__(self, binary, base, sock, logpath):
        root = os.path.join(base, "php-site")
        os.makedirs(root)
        with open(os.path.join(root, "index.php"), "w") as f:
            f.write("<?php echo 'PHP-OK ', strlen(file_get_contents('php://input'));\n")
        conf = os.path.join(base, "htgate-php.toml")
        with open(conf, "w") as f:
            f.write(
                "[[listen]]\n"
                f"address = \"{HOST}:0\"\n\n"
                "[[site]]\n"
                "name = \"php\"\n"
                "domains = [\"php.test\"]\n"
                f"root = \"{root}\"\n"
                f"php_fpm = \"{sock}\"\n")
        self.logpath = logpath
        self.logfile = open(logpath, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen([binary, "serve", "--config", conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.http = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.logfile.write(line)
                self.logfile.flush()
                m = re.search(rb"listening on http://(\S+)", line)
                if m and self.http is None:
                    self.http = parse_addr(m.group(1).decode())
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(15):
            self.stop()
            sys.exit(f"soak: htgate (config mode) did not start; log: {logpath}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def php_trickler(addr, source, stop_at, stats):
    """POST /index.php declaring PHP_ATTACK_BODY bytes, one byte every
    PHP_ATTACK_EVERY seconds, until the server answers or `stop_at`."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(addr[0], addr[1], local_addr=(source, 0)), 10)
    except (OSError, asyncio.TimeoutError):
        stats["connect_failed"] += 1
        return
    stats["opened"] += 1
    t0 = now()
    answer = b""
    try:
        writer.write((f"POST /index.php HTTP/1.1\r\nHost: php.test\r\n"
                      f"Content-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {PHP_ATTACK_BODY}\r\n\r\n").encode())
        await writer.drain()
        read = asyncio.ensure_future(reader.read(4096))
        while now() < stop_at:
            done, _ = await asyncio.wait({read}, timeout=PHP_ATTACK_EVERY)
            if done:
                answer = read.result()
                break
            writer.write(b"a")
            await writer.drain()
        else:
            read.cancel()
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        writer.close()
    if answer.startswith(b"HTTP/1.1 408"):
        stats["cut_408"] += 1
        stats["cut_after"].append(now() - t0)
    elif answer:
        stats["other_answer"] += 1


async def php_normal_client(addr, stop_at, st):
    """A normal client: GET and small POSTs to index.php, one at a time."""
    i = 0
    while now() < stop_at:
        i += 1
        body = b"x=" + b"y" * (i % 200)
        post = i % 2 == 0
        req = (f"POST /index.php HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body if post else \
            b"GET /index.php HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n\r\n"
        want = b"PHP-OK " + (str(len(body)).encode() if post else b"0")
        t0 = now()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(addr[0], addr[1]), 10)
            writer.write(req)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(-1), 10)
            writer.close()
            if data.startswith(b"HTTP/1.1 200") and want + b"\r\n" in data.split(b"\r\n\r\n", 1)[-1]:
                st.ok += 1
                st.latencies.append(now() - t0)
            else:
                st.error(data.split(b"\r\n", 1)[0].decode(errors="replace") or "no answer")
        except (OSError, asyncio.TimeoutError) as e:
            st.error(type(e).__name__)
        await asyncio.sleep(0.1)


async def php_attack_round(addr, seconds):
    stop_at = now() + seconds
    stats = {"opened": 0, "connect_failed": 0, "cut_408": 0, "other_answer": 0, "cut_after": []}
    st = NormalStats()
    tasks = []
    for i in range(PHP_ATTACK_CONNECTIONS):
        source = PHP_ATTACK_SOURCES[i % len(PHP_ATTACK_SOURCES)]
        tasks.append(asyncio.ensure_future(php_trickler(addr, source, stop_at, stats)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    normal = asyncio.ensure_future(php_normal_client(addr, stop_at, st))
    await asyncio.gather(normal, *tasks)
    return stats, st


def php_slow_body_attack(binary, base, seconds, failures):
    """The slow-body-to-PHP attack against config mode; appends failures."""
    print("\n== slow bodies to PHP (config mode, PHP-FPM pm.max_children = "
          f"{PHP_MAX_CHILDREN})")
    fpm_binary = find_php_fpm()
    if fpm_binary is None:
        if os.environ.get("CI") == "true":
            failures.append("php-fpm not installed (apt-get install -y php-fpm) but CI=true: "
                            "the slow-body-to-PHP attack cannot run")
        else:
            print("  skipped: php-fpm not installed (apt-get install -y php-fpm)")
        return
    fpm = PhpFpm(fpm_binary, base)
    server = None
    try:
        server = ConfigServer(binary, base, fpm.socket, os.path.join(base, "htgate-php.log"))
        log(f"slow bodies to PHP: {PHP_ATTACK_CONNECTIONS} connections from "
            f"{len(PHP_ATTACK_SOURCES)} addresses, one byte every {PHP_ATTACK_EVERY:.0f} s, "
            f"{seconds:.0f} s")
        stats, st = asyncio.run(php_attack_round(server.http, seconds))
        total = st.ok + st.bad
        rate = 100.0 * st.ok / total if total else 0.0
        p50 = pct(st.latencies, 50) * 1000
        p99 = pct(st.latencies, 99) * 1000
        print(f"  normal PHP requests  {st.ok}/{total} ok  {rate:.2f} %  "
              f"p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        longest = max(stats["cut_after"]) if stats["cut_after"] else 0.0
        print(f"  tricklers            {stats['opened']} opened, {stats['connect_failed']} "
              f"could not connect, {stats['cut_408']} cut with 408 "
              f"(longest {longest:.1f} s, limit {PHP_BODY_TIMEOUT:.0f} s), "
              f"{stats['other_answer']} other answers")
        if total == 0 or st.ok != total:
            failures.append(f"slow bodies to PHP: normal PHP requests {st.ok}/{total} ok "
                            f"({st.errors})")
        if total and p99 > 3000:
            failures.append(f"slow bodies to PHP: p99 latency {p99:.0f} ms")
        if stats["opened"] < PHP_ATTACK_CONNECTIONS * 9 // 10:
            failures.append(f"slow bodies to PHP: only {stats['opened']} attack connections opened")
        if seconds > PHP_BODY_TIMEOUT + SLACK and stats["cut_408"] < stats["opened"] * 9 // 10:
            failures.append(f"slow bodies to PHP: only {stats['cut_408']} of {stats['opened']} "
                            "tricklers were answered 408")
        if longest > PHP_BODY_TIMEOUT + SLACK:
            failures.append(f"slow bodies to PHP: a trickler lasted {longest:.1f} s")
        if server.proc.poll() is not None:
            failures.append("slow bodies to PHP: htgate died")
    finally:
        if server is not None:
            server.stop()
        fpm.stop()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(here, "..", "target", "release", "htgate"))
    ap.add_argument("--corpus", default=os.path.join(here, "..", "fixtures", "hostile"))
    ap.add_argument("--duration", type=float, default=80.0, help="first round, seconds")
    ap.add_argument("--second", type=float, default=45.0, help="second round, seconds")
    ap.add_argument("--php-attack", type=float, default=34.0,
                    help="slow bodies to PHP, seconds (0: skip)")
    ap.add_argument("--rss-bound-mb", type=float, default=256.0,
                    help="RSS after settling may exceed the start by this much")
    ap.add_argument("--skip-h2-attack", action="store_true",
                    help="leave out the HTTP/2 zero-window attack")
    ap.add_argument("--only-h2-attack", action="store_true",
                    help="only the HTTP/2 zero-window attack (no rounds)")
    args = ap.parse_args()
    started = now()
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"soak: no executable at {args.binary} (cargo build --release)")
    cases = load_corpus(args.corpus)
    if len(cases) < 150:
        sys.exit(f"soak: only {len(cases)} hostile requests in {args.corpus}")
    slow_total = sum(SLOW_KINDS.values())
    fds = raise_fd_limit(4 * (slow_total + HOG_CONNECTIONS + H2_ATTACK_CONNECTIONS) + 1024)
    log(f"fd limit {fds}; {len(cases)} hostile requests; {slow_total} slow connections")

    tls_ctx = ssl.create_default_context()
    tls_ctx.check_hostname = False
    tls_ctx.verify_mode = ssl.CERT_NONE

    failures = []
    with tempfile.TemporaryDirectory(prefix="htgate-soak-") as base:
        root = demo_tree(base)
        server = Server(args.binary, root, os.path.join(base, "htgate.log"))
        log(f"htgate pid {server.proc.pid} on http://{server.http[0]}:{server.http[1]} "
            f"and https://{server.https[0]}:{server.https[1]}")
        # Warm up a little (first requests fill caches), then measure.
        asyncio.run(round_(server, cases[:5], 2, 0.0, tls_ctx))
        time.sleep(1)
        rss_before = server.rss_kb()
        log(f"RSS before: {rss_before} kB")

        if args.only_h2_attack:
            log(f"HTTP/2 zero-window attack: {H2_ATTACK_SECONDS:.0f} s")
            h2 = asyncio.run(h2_zero_window_attack(server, tls_ctx))
            report_h2_attack(h2, failures)
            if failures:
                print("\n== FAILURES\n  " + "\n  ".join(failures))
                print("\n-- server log (tail)\n" + server.log_tail())
            server.kill()
            sys.exit(1 if failures else 0)

        log(f"round 1: {args.duration:.0f} s")
        r1 = asyncio.run(round_(server, cases, args.duration, 1.0, tls_ctx))
        time.sleep(5)
        rss_after1 = server.rss_kb()
        report_round("round 1", r1, failures)
        if not server.alive():
            failures.append("the server died during round 1")

        log(f"round 2: {args.second:.0f} s")
        r2 = asyncio.run(round_(server, cases, args.second, 1.0, tls_ctx)) if server.alive() else None
        time.sleep(5)
        rss_after2 = server.rss_kb()
        if r2:
            report_round("round 2", r2, failures)
        if not server.alive():
            failures.append(f"the server died (exit {server.proc.returncode})")

        if server.alive() and not args.skip_h2_attack:
            log(f"HTTP/2 zero-window attack: {H2_ATTACK_SECONDS:.0f} s")
            h2 = asyncio.run(h2_zero_window_attack(server, tls_ctx))
            report_h2_attack(h2, failures)
            if not server.alive():
                failures.append(f"the server died in the HTTP/2 attack (exit {server.proc.returncode})")

        peak = max(x for x in [r1["rss_peak"], r2["rss_peak"] if r2 else None, rss_after2] if x)
        print("\n== memory (VmRSS)")
        print(f"  before            {rss_before / 1024:8.1f} MiB")
        print(f"  peak              {peak / 1024:8.1f} MiB")
        print(f"  after round 1     {(rss_after1 or 0) / 1024:8.1f} MiB")
        print(f"  after round 2     {(rss_after2 or 0) / 1024:8.1f} MiB")
        if rss_before and rss_after2:
            if rss_after2 > rss_before + args.rss_bound_mb * 1024:
                failures.append(f"RSS grew from {rss_before} kB to {rss_after2} kB")
            if rss_after1 and rss_after2 > rss_after1 * 1.25 + 32 * 1024:
                failures.append(f"RSS kept growing: {rss_after1} kB after round 1, {rss_after2} kB after round 2")

        # Graceful shutdown: SIGTERM, drain, exit 0.
        if server.alive():
            t0 = now()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(timeout=20)
                print(f"\n== SIGTERM: exit {code} after {now() - t0:.1f} s")
                if code != 0:
                    failures.append(f"exit code {code} after SIGTERM")
            except subprocess.TimeoutExpired:
                failures.append("no exit within 20 s of SIGTERM")
                server.kill()
        else:
            print(server.log_tail())
        if args.php_attack > 0:
            php_slow_body_attack(args.binary, base, args.php_attack, failures)
        elapsed = now() - started
        print(f"\n== total {elapsed:.0f} s")
        if elapsed > 300:
            failures.append(f"took {elapsed:.0f} s (budget 300 s)")
        if failures:
            print("\n== FAILURES")
            for f in failures[:200]:
                print("  " + f)
            if len(failures) > 200:
                print(f"  ... and {len(failures) - 200} more")
            print("\n-- server log (tail)\n" + server.log_tail())
            sys.exit(1)
        print("\nsoak: OK")


if __name__ == "__main__":
    main()
