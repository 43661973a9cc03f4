#!/usr/bin/env python3
"""Forwards TCP from LISTEN_IP:LISTEN_PORT to 127.0.0.1:TARGET_PORT.

Chromium's DevTools listens on loopback only (new headless ignores
--remote-debugging-address). A test that runs chromium inside a network
namespace starts this beside it, in the same namespace, so the test
process can reach DevTools over the namespace's veth.

    forward.py LISTEN_IP LISTEN_PORT TARGET_PORT
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_r, client_w, target_port):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w))


async def main():
    ip, port, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = await asyncio.start_server(lambda r, w: handle(r, w, target), ip, port)
    print(f"forwarding {ip}:{port} to 127.0.0.1:{target}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
