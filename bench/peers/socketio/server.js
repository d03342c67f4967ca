"use strict";

// Socket.IO peer for the Switchboard benchmark.
//
//   node server.js [PORT]        (or PORT=... / SOCKETIO_PORT=... in the environment; 0 = any free port)
//
// Listens on 127.0.0.1 only and prints exactly one line to stdout when ready:
//   socketio listening on http://127.0.0.1:PORT
//
// Events (default namespace "/"):
//   join    (room[, ack])        -> socket.join(room); ack() if the client asked for one
//   publish (room, data[, ack])  -> io.to(room).emit("message", data)  (the sender gets it too
//                                   when it is in the room); ack() if the client asked for one

const http = require("node:http");
const { Server } = require("socket.io");

const HOST = "127.0.0.1";
const rawPort = process.argv[2] ?? process.env.SOCKETIO_PORT ?? process.env.PORT ?? "0";
const port = Number.parseInt(rawPort, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid port: ${rawPort}`);
  process.exit(2);
}

const httpServer = http.createServer((req, res) => {
  // Anything that is not a Socket.IO request.
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

const io = new Server(httpServer, {
  path: "/socket.io/",
  serveClient: false,
  transports: ["websocket"], // clients connect with ?EIO=4&transport=websocket directly
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 1e6, // largest accepted incoming message, bytes (Socket.IO default)
  pingInterval: 25000, // Socket.IO defaults, stated explicitly
  pingTimeout: 20000,
  connectTimeout: 45000,
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room === "string") {
      socket.join(room);
    }
    if (typeof ack === "function") {
      ack();
    }
  });

  socket.on("publish", (room, data, ack) => {
    if (typeof room === "string") {
      io.to(room).emit("message", data);
    }
    if (typeof ack === "function") {
      ack();
    }
  });
});

httpServer.on("error", (err) => {
  console.error(`socketio server error: ${err.message}`);
  process.exit(1);
});

httpServer.listen(port, HOST, () => {
  const { port: actual } = httpServer.address();
  process.stdout.write(`socketio listening on http://${HOST}:${actual}\n`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) {
    return;
  }
  stopping = true;
  console.error(`socketio received ${signal}, closing`);
  // Give up on a clean close after 5 s (e.g. thousands of sockets still flushing).
  setTimeout(() => process.exit(0), 5000).unref();
  io.close(() => process.exit(0)); // disconnects every client and closes the HTTP server
}
process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
