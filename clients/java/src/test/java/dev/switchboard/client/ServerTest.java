package dev.switchboard.client;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/** Base of tests that need a fresh server each: clients made here are closed afterwards. */
abstract class ServerTest {
  TestServer server;
  private final List<Client> clients = new ArrayList<>();

  @BeforeEach
  void startServer() throws IOException {
    server = TestServer.start();
  }

  @AfterEach
  void stopServer() {
    try {
      for (Client c : clients) {
        c.close();
      }
    } finally {
      server.close();
    }
  }

  /** A client named {@code name} with the default options. */
  Client connect(String name) {
    return connect(name, b -> {});
  }

  /** A client named {@code name}; {@code options} adjusts the builder. */
  Client connect(String name, Consumer<ClientOptions.Builder> options) {
    ClientOptions.Builder builder = ClientOptions.builder().name(name);
    options.accept(builder);
    Client client = Await.result(Client.connect(server.url, builder.build()));
    track(client);
    return client;
  }

  void track(Client client) {
    clients.add(client);
  }

  /** Joins with a recorder as the listener. */
  static Subscription join(Client client, String room, Recorder recorder) {
    return Await.result(client.join(room, JoinOptions.builder().listener(recorder).build()));
  }
}
