package dev.switchboard.client;

import dev.switchboard.v1.Disconnect;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ScheduledFuture;
import okhttp3.WebSocket;

/** One WebSocket and the commands in flight on it. The client's lock guards every field. */
final class Connection {
  // Request ids are non-zero uint32s; they wrap around.
  private static final long MAX_REQUEST_ID = 0xFFFF_FFFFL;

  /** How far the connection got. */
  enum Phase {
    /** The WebSocket upgrade is under way. */
    DIALING,
    /** Open; {@code connect} was sent. */
    AUTHENTICATING,
    /** Authenticated; the subscribed rooms are being rejoined. */
    REJOINING,
    /** Usable: the client is CONNECTED on it. */
    READY
  }

  /** Numbers connections in logs. */
  final int serial;
  /** The socket; null only while {@code newWebSocket} has not returned. */
  WebSocket ws;
  Phase phase = Phase.DIALING;
  /** Commands awaiting their reply, by request id. */
  final Map<Integer, Call> pending = new HashMap<>();
  /** False once the end of the connection was seen. */
  boolean alive = true;
  /** OkHttp reported the socket finished (closed or failed): its reader thread is done. */
  boolean ioFinished;
  /** The upgrade succeeded. */
  boolean opened;
  /** The server's Disconnect push, when one preceded the close. */
  Disconnect disconnect;
  /** Why the client gave up on this connection during its handshake. */
  SwitchboardException abandonError;
  /** Fires when the upgrade takes longer than the command timeout. */
  ScheduledFuture<?> dialTimer;
  /** Rejoins sent during the handshake whose replies are still due. */
  int rejoinsPending;
  /** The rooms of those rejoins. */
  final Set<String> rejoining = new HashSet<>();
  private long lastId;

  Connection(int serial) {
    this.serial = serial;
  }

  /** Gives {@code call} a request id unused on this connection. */
  int register(Call call) {
    int id;
    do {
      lastId = lastId % MAX_REQUEST_ID + 1;
      id = (int) lastId;
    } while (pending.containsKey(id));
    pending.put(id, call);
    call.connection = this;
    call.requestId = id;
    return id;
  }

  /** Forgets a call that settled without its reply (timeout, cancel). */
  void forget(Call call) {
    if (call.connection == this && pending.get(call.requestId) == call) {
      pending.remove(call.requestId);
    }
  }

  /** Removes and returns every pending call, oldest first. */
  List<Call> drainPending() {
    List<Call> calls = new ArrayList<>(pending.values());
    pending.clear();
    calls.sort((a, b) -> Long.compare(a.seq, b.seq));
    return calls;
  }

  @Override
  public String toString() {
    return "connection " + serial + " (" + phase + (alive ? "" : ", ended") + ")";
  }
}
