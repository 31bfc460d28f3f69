#!/usr/bin/python3
"""Attack clients, a scriptable upstream and the good-client/sampler harness used by
bench/attacks/run.py and tests/integration/test_terminator_attacks.py.

Everything talks to 127.0.0.0/8 only, every loop is bounded in count and time, and every process
stops by itself. Attackers run as separate processes (`attacks.py attack KIND ...`) so that their
Python work does not stall the good clients' measurements (one GIL per process).

  attacks.py upstream PORT MODE [DELAY]   MODE: ok | slow (answer after DELAY s) | reset (RST at accept)
  attacks.py attack KIND --port P --count N --duration S [--src 127.0.0.2] [--sni NAME]
     KIND: idle | slowloris-tls | slowloris-http | flood | silent | garbage | vanish-rst | vanish-fin | stall-hello
  Prints "READY <n>" once its load is in place, then one JSON line with its counts when it ends.
"""
import argparse
import asyncio
import json
import os
import random
import resource
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

SNI = "attack.test"
HERE = os.path.dirname(os.path.abspath(__file__))


def raise_nofile(want=65536):
    """Open-files limit up to `want` (raising the hard limit needs root; otherwise up to it).
    Children (the terminator, attackers) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_ctx(alpn=("http/1.1",)):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))  # what curl, browsers and urllib send
    return ctx


def client_hello(sni=SNI):
    """The bytes of a real ClientHello (Python's own), made without a socket."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


# ---------------------------------------------------------------- upstream

async def _upstream(port, mode, delay):
    async def handle(r, w):
        sock = w.get_extra_info("socket")
        if mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            w.transport.abort()
            return
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                if mode == "slow":
                    await asyncio.sleep(delay)
                close = b"connection: close" in head.lower()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + (b"Connection: close\r\n" if close else b"") +
                        b"\r\nok\n")
                await w.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print("READY", flush=True)
    async with srv:
        await srv.serve_forever()


class Upstream:
    """The application behind the terminator, as a separate process; restartable in another mode
    on the same port (the terminator resolves its upstream once)."""

    def __init__(self, port):
        self.port, self.proc = port, None

    def start(self, mode="ok", delay=3.0):
        self.stop()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "attacks.py"), "upstream", str(self.port),
                                      mode, str(delay)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("READY"), f"upstream did not start: {line!r}"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------- attackers

class Counts(dict):
    def inc(self, k, n=1):
        self[k] = self.get(k, 0) + n


async def _open(args, tls, counts):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", args.port, ssl=client_ctx() if tls else None, server_hostname=args.sni if tls else None,
            local_addr=(args.src, 0)), 15)
        counts.inc("established")
        return r, w
    except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
        counts.inc("refused:" + type(e).__name__)
        return None


async def _hold(args, tls, counts, end, per_second=None):
    """Opens `count` connections (TLS or plain), holds them until `end`; with per_second, each
    sends one byte of a never-ending request head every second (slowloris)."""
    sem = asyncio.Semaphore(200)
    conns = []

    async def one():
        async with sem:
            c = await _open(args, tls, counts)
            if c:
                conns.append(c)

    await asyncio.gather(*[one() for _ in range(args.count)])
    print("READY", len(conns), flush=True)
    closed_at = []
    t0 = time.monotonic()

    async def watch(r, w):
        head = (b"GET / HTTP/1.1\r\nHost: " + args.sni.encode() + b"\r\n" + b"X-Slow: " + b"a" * 100000)
        i = 0
        try:
            while time.monotonic() < end:
                if per_second:
                    w.write(head[i:i + 1])
                    i += 1
                    await w.drain()
                try:
                    d = await asyncio.wait_for(r.read(4096), 1.0)
                    if not d:
                        break  # the server closed it
                except asyncio.TimeoutError:
                    continue
            else:
                return
        except (OSError, ssl.SSLError):
            pass
        closed_at.append(time.monotonic() - t0)

    await asyncio.gather(*[watch(r, w) for r, w in conns])
    counts["held_to_end"] = len(conns) - len(closed_at)
    counts["closed_by_server"] = len(closed_at)
    if closed_at:
        closed_at.sort()
        counts["closed_after_s_median"] = round(closed_at[len(closed_at) // 2], 1)
    for _, w in conns:
        w.transport.abort()


async def _churn(args, counts, end, once):
    """`count` concurrent loops of one short-lived connection each until `end`."""
    print("READY", args.count, flush=True)

    async def loop():
        while time.monotonic() < end:
            try:
                await once()
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
                counts.inc("error:" + type(e).__name__)

    await asyncio.gather(*[loop() for _ in range(args.count)])


async def _raw(args):
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    s.bind((args.src, 0))
    await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", args.port)), 5)
    return loop, s


async def _read_to_close(loop, s, limit=5):
    try:
        while await asyncio.wait_for(loop.sock_recv(s, 4096), limit):
            pass
        return True
    except asyncio.TimeoutError:
        return False


async def attack(args):
    end = time.monotonic() + args.duration
    counts = Counts()
    hello = client_hello(args.sni)
    if args.kind == "idle":
        await _hold(args, True, counts, end)
    elif args.kind == "slowloris-tls":
        await _hold(args, True, counts, end, per_second=1)
    elif args.kind == "slowloris-http":
        await _hold(args, False, counts, end, per_second=1)
    elif args.kind == "silent":  # TCP connections that never send a byte
        await _hold(args, False, counts, end)
    elif args.kind == "flood":
        # Full handshakes, each connection then held (no request) until the server closes it or
        # the attack ends; `count` of them at once, replaced as soon as one is closed.
        async def once():
            c = await _open(args, True, counts)
            if not c:
                await asyncio.sleep(0.05)
                return
            r, w = c
            try:
                if not await asyncio.wait_for(r.read(1), max(0.1, end - time.monotonic())):
                    counts.inc("closed_by_server")
            except asyncio.TimeoutError:
                pass
            finally:
                w.transport.abort()
        await _churn(args, counts, end, once)
    elif args.kind == "garbage":
        async def once():
            loop, s = await _raw(args)
            with s:
                await loop.sock_sendall(s, os.urandom(random.randint(16, 4096)))
                counts.inc("sent")
                if await _read_to_close(loop, s):
                    counts.inc("closed_by_server")
        await _churn(args, counts, end, once)
    elif args.kind in ("vanish-rst", "vanish-fin", "stall-hello"):
        async def once():
            loop, s = await _raw(args)
            with s:
                if args.kind == "vanish-rst":  # whole ClientHello, then a reset
                    await loop.sock_sendall(s, hello)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif args.kind == "vanish-fin":  # half a ClientHello, then a FIN
                    await loop.sock_sendall(s, hello[:len(hello) // 2])
                    s.shutdown(socket.SHUT_WR)
                    await _read_to_close(loop, s)
                else:  # half a ClientHello, then nothing: the handshake deadline must end it
                    t0 = time.monotonic()
                    await loop.sock_sendall(s, hello[:len(hello) // 2])
                    if await _read_to_close(loop, s, limit=max(0.1, end - time.monotonic())):
                        counts.inc("closed_by_server")
                        counts["closed_after_s"] = round(time.monotonic() - t0, 1)
                counts.inc("done")
        await _churn(args, counts, end, once)
    else:
        raise SystemExit(f"unknown attack {args.kind}")
    print(json.dumps(counts), flush=True)


class Attacker:
    """An attack in its own process; `start()` returns once its load is in place."""

    def __init__(self, kind, port, count, duration, src="127.0.0.2", sni=SNI):
        self.kind, self.result, self.ready = kind, {}, 0
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "attacks.py"), "attack", kind, "--port",
                                      str(port), "--count", str(count), "--duration", str(duration), "--src", src,
                                      "--sni", sni], stdout=subprocess.PIPE, text=True)
        self.deadline = time.monotonic() + duration + 60

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.stop()
            raise AssertionError(f"attacker {self.kind} did not get ready: {line!r}")
        self.ready = int(line.split()[1])
        return self

    def wait(self):
        try:
            out, _ = self.proc.communicate(timeout=max(1, self.deadline - time.monotonic()))
            lines = [l for l in out.splitlines() if l.startswith("{")]
            self.result = json.loads(lines[-1]) if lines else {}
        except subprocess.TimeoutExpired:
            self.stop()
        return self.result

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- measurements

def proc_sample(pid):
    """(RSS KiB, open fds) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples, self.stopped = pid, interval, [], threading.Event()
        self.start()

    def run(self):
        while not self.stopped.is_set():
            try:
                self.samples.append((time.monotonic(), *proc_sample(self.pid)))
            except OSError:
                return
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join()
        return self

    def peak(self):
        return (max((s[1] for s in self.samples), default=0), max((s[2] for s in self.samples), default=0))


def good_request(port, tls=True, timeout=5.0, path="/", sni=SNI):
    """One request on a new connection (full handshake, no resumption): (status or None, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=("127.0.0.1", 0)) as raw:
            s = client_ctx().wrap_socket(raw, server_hostname=sni) if tls else raw
            with s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while b"\r\n" not in data:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
                parts = data.split(b" ", 2)
                status = int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/1.") else None
                return status, time.monotonic() - t0
    except (OSError, ssl.SSLError, ValueError):
        return None, time.monotonic() - t0


class GoodClients:
    """`threads` well-behaved clients, each sending one request every `interval` seconds on a new
    connection, until stop(). A request counts as good if its status is in `ok`."""

    def __init__(self, port, tls=True, threads=4, interval=0.05, ok=(200,), timeout=5.0):
        self.port, self.tls, self.ok, self.timeout = port, tls, set(ok), timeout
        self.results, self.lock, self.stopped = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(interval,), daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, interval):
        nxt = time.monotonic()
        while not self.stopped.is_set():
            st, dt = good_request(self.port, self.tls, self.timeout)
            with self.lock:
                self.results.append((st, dt))
            nxt = max(nxt + interval, time.monotonic())
            self.stopped.wait(max(0, nxt - time.monotonic()))

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join()
        return self.summary()

    def summary(self):
        with self.lock:
            res = list(self.results)
        lat = sorted(dt for st, dt in res if st in self.ok)
        good = len(lat)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None
        statuses = {}
        for st, _ in res:
            statuses[str(st)] = statuses.get(str(st), 0) + 1
        return {"total": len(res), "good": good, "rate": round(100.0 * good / len(res), 2) if res else 0.0,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "statuses": statuses}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("upstream")
    u.add_argument("port", type=int)
    u.add_argument("mode", choices=["ok", "slow", "reset"])
    u.add_argument("delay", type=float, nargs="?", default=3.0)
    a = sub.add_parser("attack")
    a.add_argument("kind")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--count", type=int, default=100)
    a.add_argument("--duration", type=float, default=10)
    a.add_argument("--src", default="127.0.0.2")
    a.add_argument("--sni", default=SNI)
    args = ap.parse_args()
    raise_nofile()
    if args.cmd == "upstream":
        asyncio.run(_upstream(args.port, args.mode, args.delay))
    else:
        args.duration = min(args.duration, 3600)  # bounded whatever the caller asks
        asyncio.run(attack(args))


if __name__ == "__main__":
    main()
