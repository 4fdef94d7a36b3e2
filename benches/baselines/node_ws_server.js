// Baseline: Node.js with the `ws` package. `/ws` sends every published event to each open
// socket; `POST /publish` takes the raw event body. Loopback only.
//
//   node node_ws_server.js --port 8002
"use strict";

const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const portAt = process.argv.indexOf("--port");
const port = portAt > 0 ? Number(process.argv[portAt + 1]) : 8002;

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

const server = http.createServer((req, res) => {
  if (req.method === "POST" && req.url === "/publish") {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const message = Buffer.concat(chunks).toString("utf8");
      let sent = 0;
      for (const ws of wss.clients) {
        if (ws.readyState === WebSocket.OPEN) {
          ws.send(message);
          sent++;
        }
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "ok", clients: sent }));
    });
    return;
  }
  res.writeHead(404);
  res.end();
});

server.on("upgrade", (req, socket, head) => {
  if (req.url !== "/ws") {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("error", () => {});
  });
});

server.listen({ host: "127.0.0.1", port, backlog: 4096 });
