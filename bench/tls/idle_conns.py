#!/usr/bin/python3
"""idle_conns.py PORT N PID: opens N TLS connections (handshake done, then idle) and prints the
terminator's PSS before and after, in KiB per connection."""
import asyncio
import ssl
import sys

port, n, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def pss_kib():
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = pss_kib()
    conns = []
    sem = asyncio.Semaphore(int(sys.argv[4]) if len(sys.argv) > 4 else 50)

    async def one():
        async with sem:
            conns.append(await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="bench.test"))

    await asyncio.gather(*[one() for _ in range(n)])
    await asyncio.sleep(1)
    after = pss_kib()
    print(f"idle_conns={len(conns)} pss_before_kib={before} pss_after_kib={after} "
          f"kib_per_conn={(after - before) / max(1, len(conns)):.1f}")
    for r, w in conns:
        w.close()


asyncio.run(main())
