"""A dashboard-style python-socketio client, as seed 002 sketches it, against vigil's /socket.io/.

Usage: sio_dashboard.py URL TOKEN

Connects with the token in the Socket.IO auth payload (never in the URL), joins the `scans`
room, checks that the `admin` room is refused to its role, prints one JSON line
{"joined": ..., "admin": ...}, then waits for one `scan_update` event and prints
{"scan_update": ENVELOPE}. Exits 0 on success, 1 on any failure or after 20 seconds.
"""

import asyncio
import json
import sys

import socketio


async def main(url: str, token: str) -> int:
    sio = socketio.AsyncClient(reconnection=False)
    received = asyncio.get_running_loop().create_future()

    @sio.on('scan_update')
    async def on_scan_update(data):
        if not received.done():
            received.set_result(data)

    await sio.connect(url, auth={'token': token}, wait_timeout=10)
    try:
        joined = await sio.call('join_room', {'room': 'scans'}, timeout=10)
        admin = await sio.call('join_room', {'room': 'admin'}, timeout=10)
        print(json.dumps({'joined': joined, 'admin': admin}), flush=True)
        envelope = await asyncio.wait_for(received, timeout=15)
        print(json.dumps({'scan_update': envelope}), flush=True)
    finally:
        await sio.disconnect()
    return 0


if __name__ == '__main__':
    try:
        code = asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=20))
    except Exception as e:  # report and fail: the Rust test reads the exit code
        print(f'dashboard failed: {e!r}', file=sys.stderr)
        code = 1
    sys.exit(code)
