/**
 * Node entry point (the package's "node" export): the same API as the
 * default entry, with the `ws` package as the WebSocket implementation, since
 * Node 20 has no global `WebSocket` (and `ws` behaves the same on later
 * versions). Browser bundles use `index.ts` and never load `ws`.
 */
import { WebSocket as NodeWebSocket } from "ws";
import { setDefaultWebSocket } from "./websocket.js";

setDefaultWebSocket(NodeWebSocket);

export * from "./index.js";
