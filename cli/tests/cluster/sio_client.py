"""A python-socketio dashboard client for the cluster tests.

Usage: sio_client.py URL TOKEN TRANSPORT ROOM KIND

TRANSPORT is `websocket` (WebSocket only: any node may answer) or `polling` (long-polling
first, then the upgrade, as browsers do: behind a load balancer this needs sticky sessions; the
HTTP session keeps the balancer's cookie, also for a 127.0.0.1 URL).

Joins ROOM, prints {"joined": ACK, "transport": ...}, waits for one KIND event and prints
{"event": ENVELOPE}. Exits 0 on success, 1 on any failure or after 60 seconds.
"""

import asyncio
import json
import sys

import aiohttp
import socketio


async def main(url: str, token: str, transport: str, room: str, kind: str) -> int:
    # aiohttp ignores cookies from IP-address hosts unless the jar is "unsafe".
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    transports = ['websocket'] if transport == 'websocket' else ['polling', 'websocket']
    sio = socketio.AsyncClient(reconnection=False, http_session=session)
    received = asyncio.get_running_loop().create_future()

    @sio.on(kind)
    async def on_event(data):
        if not received.done():
            received.set_result(data)

    try:
        await sio.connect(url, auth={'token': token}, transports=transports, wait_timeout=20)
        joined = await sio.call('join_room', {'room': room}, timeout=20)
        print(json.dumps({'joined': joined, 'transport': sio.transport()}), flush=True)
        envelope = await asyncio.wait_for(received, timeout=45)
        print(json.dumps({'event': envelope, 'transport': sio.transport()}), flush=True)
    finally:
        await sio.disconnect()
        await session.close()
    return 0


if __name__ == '__main__':
    try:
        code = asyncio.run(asyncio.wait_for(main(*sys.argv[1:6]), timeout=60))
    except Exception as e:  # report and fail: the Rust test reads the exit code
        print(f'sio_client failed: {e!r}', file=sys.stderr)
        code = 1
    sys.exit(code)
