"""Baseline: the seed dashboard's design in aiohttp, reduced to its event path.

A set of connected sockets; POST /publish sends the raw body to each one with send_str, one
after the other, as the seed's broadcast loop does. Loopback only.

    python3 aiohttp_server.py --port 8001
"""

import argparse

from aiohttp import WSMsgType, web

clients = set()


async def ws_handler(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    clients.add(ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        clients.discard(ws)
    return ws


async def publish(request):
    message = await request.text()
    dead = []
    for ws in list(clients):
        try:
            await ws.send_str(message)
        except Exception:  # the seed drops a client whose send fails
            dead.append(ws)
    for ws in dead:
        clients.discard(ws)
    return web.json_response({"status": "ok", "clients": len(clients)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/publish", publish)
    web.run_app(app, host=args.host, port=args.port, backlog=4096, print=None)


if __name__ == "__main__":
    main()
